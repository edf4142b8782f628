"use strict";
// The one sanitiser for data sent to other workers, by either transport:
// it makes a value serializable the way Socket.IO's JSON encoding treats it
// while keeping what v8 can carry exactly.

/**
 * A copy of `value` where `toJSON()` is honoured, functions and symbols are
 * dropped, class instances become their own enumerable fields, and binary
 * data, Dates, Maps, Sets, Errors and BigInts stay as they are.
 *
 * A circular structure is a TypeError, unless `lenient`: then it becomes
 * null where it closes the circle (as does a value whose toJSON() throws),
 * and everything else is kept. With `json` (the IPC channel's default
 * serialization), BigInts, which JSON cannot carry, become null too.
 */
function sanitize(value, { lenient = false, json = false } = {}) {
  return copy(value, new Set(), lenient, json);
}

function copy(value, seen, lenient, json) {
  if (value === null) return null;
  const t = typeof value;
  if (t === "function" || t === "symbol") return undefined;
  if (t === "bigint") return json ? null : value;
  if (t !== "object") return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (value instanceof Date || value instanceof RegExp) return value;
  if (typeof value.toJSON === "function") {
    if (!lenient) return copy(value.toJSON(), seen, lenient, json);
    try {
      return copy(value.toJSON(), seen, lenient, json);
    } catch {
      return null;
    }
  }
  if (seen.has(value)) {
    if (lenient) return null;
    throw new TypeError("socket.io-cluster-rs: cannot send a circular structure to other workers");
  }
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = value.map((v) => {
      const p = copy(v, seen, lenient, json);
      return p === undefined ? null : p;
    });
  } else if (value instanceof Map) {
    out = new Map();
    for (const [k, v] of value) out.set(copy(k, seen, lenient, json), copy(v, seen, lenient, json));
  } else if (value instanceof Set) {
    out = new Set();
    for (const v of value) out.add(copy(v, seen, lenient, json));
  } else if (value instanceof Error) {
    out = value; // v8 clones Errors natively
  } else {
    out = {};
    for (const key of Object.keys(value)) {
      const p = copy(value[key], seen, lenient, json);
      if (p !== undefined) out[key] = p;
    }
  }
  seen.delete(value);
  return out;
}

module.exports = { sanitize };
