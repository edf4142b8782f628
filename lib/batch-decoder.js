"use strict";
// Reads the records Link.drain() and Link.feed() return and calls the sink's
// handler for each, with the record's fields in order. The layout is
// src/batch.rs's RECORDS table; the offsets used here are generated from it
// into lib/generated/batch-layout.js.

const L = require("./generated/batch-layout");
const binding = require("./native");
const debug = require("./debug").logger("link");

if (binding.batchLayoutDigest() !== L.LAYOUT_DIGEST) {
  throw new Error(
    "socket.io-cluster-rs: the native addon was built from other sources than lib/ (batch layout differs); rebuild it with `npm run build`",
  );
}

/**
 * Calls, for each record of `buf`, `sink.onUp(node)`, `onDown(reason)`,
 * `onMessage(from, kind, nsp, payload)`, `onIncoming(id, from, kind, nsp,
 * payload)`, `onAccepted(req, expected)`, `onReply(req, from, last, done,
 * payload)`, `onDeparted(req, node)`, `onDone(req)`, `onTimedOut(req,
 * missing, pids)`, `onCount(req, count)`, `onDropped(volatile, overflow)`,
 * `onTooLarge(count, limit)`, `onRestored(req, outcome, payload)`,
 * `onRecoveryOn(nsp)` or `onEcho(nsp, offset)`. Before every record but a
 * MESSAGE or an ECHO, and at the end, `sink.flushHeld()`: remote broadcasts held for one write go out
 * before anything else can run user code. A handler that throws is logged;
 * the next record is handled as usual.
 */
function decodeBatch(buf, sink) {
  let off = 0;
  while (off + L.RECORD_HEADER <= buf.length) {
    const type = buf[off];
    const start = off + L.RECORD_HEADER;
    const end = start + buf.readUInt32LE(off + 1);
    off = end;
    // An ECHO delivers this worker's own broadcast like a MESSAGE does.
    if (type !== L.MESSAGE && type !== L.ECHO) sink.flushHeld();
    try {
      decodeRecord(type, buf, start, end, sink);
    } catch (err) {
      // A bad message from one peer must not take this worker down.
      debug("error while handling event %d: %s", type, err && err.stack);
    }
  }
  sink.flushHeld();
}

function decodeRecord(type, buf, pos, end, sink) {
  const u32 = (at) => buf.readUInt32LE(pos + at);
  const f64 = (at) => buf.readDoubleLE(pos + at);
  switch (type) {
    case L.MESSAGE: {
      const [nsp, at] = readString(buf, pos + L.MESSAGE_NSP);
      return sink.onMessage(u32(L.MESSAGE_FROM), u32(L.MESSAGE_KIND), nsp, buf.subarray(at, end));
    }
    case L.INCOMING: {
      const [nsp, at] = readString(buf, pos + L.INCOMING_NSP);
      return sink.onIncoming(f64(L.INCOMING_ID), u32(L.INCOMING_FROM), u32(L.INCOMING_KIND), nsp, buf.subarray(at, end));
    }
    case L.REPLY:
      return sink.onReply(
        u32(L.REPLY_REQ),
        u32(L.REPLY_FROM),
        u32(L.REPLY_LAST),
        u32(L.REPLY_DONE),
        buf.subarray(pos + L.REPLY_PAYLOAD, end),
      );
    case L.ACCEPTED:
      return sink.onAccepted(u32(L.ACCEPTED_REQ), u32(L.ACCEPTED_EXPECTED));
    case L.DEPARTED:
      return sink.onDeparted(u32(L.DEPARTED_REQ), u32(L.DEPARTED_NODE));
    case L.DONE:
      return sink.onDone(u32(L.DONE_REQ));
    case L.TIMED_OUT: {
      const n = u32(L.TIMED_OUT_PIDS);
      const pids = [];
      for (let i = 0; i < n; i++) pids.push(u32(L.TIMED_OUT_PIDS + 4 + 4 * i));
      return sink.onTimedOut(u32(L.TIMED_OUT_REQ), u32(L.TIMED_OUT_MISSING), pids);
    }
    case L.COUNT:
      return sink.onCount(u32(L.COUNT_REQ), u32(L.COUNT_COUNT));
    case L.UP:
      return sink.onUp(u32(L.UP_NODE));
    case L.DOWN:
      return sink.onDown(readString(buf, pos + L.DOWN_REASON)[0]);
    case L.DROPPED:
      return sink.onDropped(f64(L.DROPPED_VOLATILE), f64(L.DROPPED_OVERFLOW));
    case L.TOO_LARGE:
      return sink.onTooLarge(f64(L.TOO_LARGE_COUNT), f64(L.TOO_LARGE_LIMIT));
    case L.ECHO: {
      const [nsp, at] = readString(buf, pos + L.ECHO_NSP);
      return sink.onEcho(nsp, readString(buf, at)[0]);
    }
    case L.RECOVERY_ON:
      return sink.onRecoveryOn(readString(buf, pos + L.RECOVERY_ON_NSP)[0]);
    case L.RESTORED:
      return sink.onRestored(u32(L.RESTORED_REQ), u32(L.RESTORED_OUTCOME), buf.subarray(pos + L.RESTORED_PAYLOAD, end));
    default:
      debug("unknown event type %d", type);
  }
}

/** Reads a `[u32 length][utf8]` string; returns it and the position after it. */
function readString(buf, pos) {
  const end = pos + 4 + buf.readUInt32LE(pos);
  return [buf.toString("utf8", pos + 4, end), end];
}

module.exports = { decodeBatch };
