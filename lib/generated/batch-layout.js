// Generated from RECORDS in src/batch.rs by the tests of src/batch_js.rs. DO NOT EDIT.
// After changing RECORDS: UPDATE_GENERATED=1 cargo test --release batch_js
"use strict";

// Each record: [u8 type][u32 LE body length][body]; offsets are into the body.
// Strings are [u32 length][utf8], lists [u32 count][u32 ...], a payload is the rest.
module.exports = Object.freeze({
  RECORD_HEADER: 5,
  LAYOUT_DIGEST: 1933744617,
  // UP: node U32
  UP: 1,
  UP_NODE: 0,
  // DOWN: reason Str
  DOWN: 2,
  DOWN_REASON: 0,
  // MESSAGE: from U32, kind U32, nsp Str, payload Payload
  MESSAGE: 3,
  MESSAGE_FROM: 0,
  MESSAGE_KIND: 4,
  MESSAGE_NSP: 8,
  // INCOMING: id F64, from U32, kind U32, nsp Str, payload Payload
  INCOMING: 4,
  INCOMING_ID: 0,
  INCOMING_FROM: 8,
  INCOMING_KIND: 12,
  INCOMING_NSP: 16,
  // ACCEPTED: req U32, expected U32
  ACCEPTED: 5,
  ACCEPTED_REQ: 0,
  ACCEPTED_EXPECTED: 4,
  // REPLY: req U32, from U32, last U32, done U32, payload Payload
  REPLY: 6,
  REPLY_REQ: 0,
  REPLY_FROM: 4,
  REPLY_LAST: 8,
  REPLY_DONE: 12,
  REPLY_PAYLOAD: 16,
  // DEPARTED: req U32, node U32
  DEPARTED: 7,
  DEPARTED_REQ: 0,
  DEPARTED_NODE: 4,
  // DONE: req U32
  DONE: 8,
  DONE_REQ: 0,
  // TIMED_OUT: req U32, missing U32, pids U32List
  TIMED_OUT: 9,
  TIMED_OUT_REQ: 0,
  TIMED_OUT_MISSING: 4,
  TIMED_OUT_PIDS: 8,
  // COUNT: req U32, count U32
  COUNT: 10,
  COUNT_REQ: 0,
  COUNT_COUNT: 4,
  // DROPPED: volatile F64, overflow F64
  DROPPED: 11,
  DROPPED_VOLATILE: 0,
  DROPPED_OVERFLOW: 8,
  // TOO_LARGE: count F64, limit F64
  TOO_LARGE: 12,
  TOO_LARGE_COUNT: 0,
  TOO_LARGE_LIMIT: 8,
  // RESTORED: req U32, outcome U32, payload Payload
  RESTORED: 13,
  RESTORED_REQ: 0,
  RESTORED_OUTCOME: 4,
  RESTORED_PAYLOAD: 8,
  // RECOVERY_ON: nsp Str
  RECOVERY_ON: 14,
  RECOVERY_ON_NSP: 0,
  // ECHO: nsp Str, offset Str
  ECHO: 15,
  ECHO_NSP: 0,
  RECORDS: Object.freeze([
    { name: "UP", code: 1, fields: [["node", "U32"]] },
    { name: "DOWN", code: 2, fields: [["reason", "Str"]] },
    { name: "MESSAGE", code: 3, fields: [["from", "U32"], ["kind", "U32"], ["nsp", "Str"], ["payload", "Payload"]] },
    { name: "INCOMING", code: 4, fields: [["id", "F64"], ["from", "U32"], ["kind", "U32"], ["nsp", "Str"], ["payload", "Payload"]] },
    { name: "ACCEPTED", code: 5, fields: [["req", "U32"], ["expected", "U32"]] },
    { name: "REPLY", code: 6, fields: [["req", "U32"], ["from", "U32"], ["last", "U32"], ["done", "U32"], ["payload", "Payload"]] },
    { name: "DEPARTED", code: 7, fields: [["req", "U32"], ["node", "U32"]] },
    { name: "DONE", code: 8, fields: [["req", "U32"]] },
    { name: "TIMED_OUT", code: 9, fields: [["req", "U32"], ["missing", "U32"], ["pids", "U32List"]] },
    { name: "COUNT", code: 10, fields: [["req", "U32"], ["count", "U32"]] },
    { name: "DROPPED", code: 11, fields: [["volatile", "F64"], ["overflow", "F64"]] },
    { name: "TOO_LARGE", code: 12, fields: [["count", "F64"], ["limit", "F64"]] },
    { name: "RESTORED", code: 13, fields: [["req", "U32"], ["outcome", "U32"], ["payload", "Payload"]] },
    { name: "RECOVERY_ON", code: 14, fields: [["nsp", "Str"]] },
    { name: "ECHO", code: 15, fields: [["nsp", "Str"], ["offset", "Str"]] },
  ]),
});
