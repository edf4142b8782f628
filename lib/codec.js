"use strict";
// Payload helpers. A payload is a list of byte parts; the hub never looks
// inside. Control data (options, fetchSockets answers, serverSideEmit
// arguments, ack values) is v8-serialized, which keeps Buffers, Dates, Maps,
// Sets and BigInts intact whatever the cluster's IPC serialization mode is.

const v8 = require("node:v8");

/** Message kinds, numbered like @socket.io/cluster-adapter's MessageType. */
const Kind = Object.freeze({
  BROADCAST: 3,
  SOCKETS_JOIN: 4,
  SOCKETS_LEAVE: 5,
  DISCONNECT_SOCKETS: 6,
  FETCH_SOCKETS: 7,
  SERVER_SIDE_EMIT: 9,
});

/**
 * Makes `value` serializable the way Socket.IO's JSON encoding treats it —
 * `toJSON()` is honoured, functions and symbols are dropped, class instances
 * become their own enumerable fields — while binary data, Dates, Maps, Sets and
 * BigInts stay as they are. A circular structure is a TypeError.
 */
function prepare(value, seen = new Set()) {
  if (value === null) return null;
  const t = typeof value;
  if (t === "function" || t === "symbol") return undefined;
  if (t !== "object") return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (value instanceof Date || value instanceof RegExp) return value;
  if (typeof value.toJSON === "function") return prepare(value.toJSON(), seen);
  if (seen.has(value)) {
    throw new TypeError("socket.io-cluster-rs: cannot send a circular structure to other workers");
  }
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = value.map((v) => {
      const p = prepare(v, seen);
      return p === undefined ? null : p;
    });
  } else if (value instanceof Map) {
    out = new Map();
    for (const [k, v] of value) out.set(prepare(k, seen), prepare(v, seen));
  } else if (value instanceof Set) {
    out = new Set();
    for (const v of value) out.add(prepare(v, seen));
  } else if (value instanceof Error) {
    out = value; // v8 clones Errors natively
  } else {
    out = {};
    for (const key of Object.keys(value)) {
      const p = prepare(value[key], seen);
      if (p !== undefined) out[key] = p;
    }
  }
  seen.delete(value);
  return out;
}

/**
 * True when v8 can serialize `value` exactly as prepare() would leave it:
 * only primitives, plain objects and arrays, binary data and Dates, nested
 * not too deep (deep or circular data takes the careful path).
 */
function isPlain(value, depth) {
  if (value === null) return true;
  const t = typeof value;
  if (t === "function" || t === "symbol") return false;
  if (t !== "object") return true;
  if (depth > 32) return false;
  if (ArrayBuffer.isView(value) || value instanceof Date) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isPlain(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  if (typeof value.toJSON === "function") return false;
  for (const key in value) if (!isPlain(value[key], depth + 1)) return false;
  return true;
}

/** Serializes control data for other workers. Throws a TypeError for circular data. */
function pack(value) {
  // The common case (plain data) skips the copy that prepare() makes.
  return v8.serialize(isPlain(value, 0) ? value : prepare(value));
}

function unpack(buf) {
  return v8.deserialize(buf);
}

/** Splits a payload `[u32 n]([u32 len][bytes])*` into Buffer views. */
function splitParts(buf) {
  const n = buf.readUInt32LE(0);
  const parts = new Array(n);
  let off = 4;
  for (let i = 0; i < n; i++) {
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) throw new RangeError("truncated payload");
    parts[i] = buf.subarray(off, off + len);
    off += len;
  }
  return parts;
}

/** Broadcast options as they travel: rooms keep their JS type (1 is not "1"). */
function encodeOptions(opts) {
  return {
    rooms: [...opts.rooms],
    except: opts.except ? [...opts.except] : [],
    flags: opts.flags || {},
  };
}

function decodeOptions(o) {
  return { rooms: new Set(o.rooms), except: new Set(o.except), flags: o.flags || {} };
}

module.exports = { Kind, pack, unpack, prepare, splitParts, encodeOptions, decodeOptions };
