"use strict";
// Payload helpers. A payload is a list of byte parts; the hub never looks
// inside. Control data (options, fetchSockets answers, serverSideEmit
// arguments, ack values) travels as JSON when JSON carries it exactly, and
// v8-serialized otherwise, which keeps Buffers, Dates, Maps, Sets and BigInts
// intact whatever the cluster's IPC serialization mode is.

const v8 = require("node:v8");
const { sanitize } = require("./sanitize");

// What classify() finds: data JSON carries exactly, data v8 carries as it
// is, and data that needs sanitize() first.
const JSON_SAFE = 0;
const PLAIN = 1;
const NEEDS_PREPARE = 2;

/**
 * JSON_SAFE: strings, finite numbers (not -0), booleans, null, plain objects
 * and arrays of those, so JSON.parse(JSON.stringify(value)) gives it back.
 * PLAIN: v8 serializes it exactly as sanitize() would leave it (binary data,
 * Dates, undefined, BigInts... in plain objects and arrays). NEEDS_PREPARE:
 * anything else, or nested too deep (deep or circular data takes the careful
 * path).
 */
function classify(value, depth) {
  if (value === null) return JSON_SAFE;
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON_SAFE;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0) ? JSON_SAFE : PLAIN;
    case "undefined":
    case "bigint":
      return PLAIN;
    case "object":
      break;
    default:
      return NEEDS_PREPARE; // functions, symbols
  }
  if (depth > 32) return NEEDS_PREPARE;
  if (ArrayBuffer.isView(value) || value instanceof Date) return PLAIN;
  let worst = JSON_SAFE;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && worst !== NEEDS_PREPARE; i++) {
      // A hole or undefined in an array would come back as null from JSON.
      worst = Math.max(worst, i in value ? classify(value[i], depth + 1) : PLAIN);
    }
    return worst;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NEEDS_PREPARE;
  if (typeof value.toJSON === "function") return NEEDS_PREPARE;
  for (const key in value) {
    worst = Math.max(worst, classify(value[key], depth + 1));
    if (worst === NEEDS_PREPARE) break;
  }
  return worst;
}

/**
 * Serializes control data for other workers. Throws a TypeError for circular
 * data. JSON when it carries the value exactly (socket details and most
 * arguments: about twice as fast as v8 both ways), v8 otherwise.
 */
function pack(value) {
  switch (classify(value, 0)) {
    case JSON_SAFE:
      return Buffer.from(JSON.stringify(value));
    case PLAIN:
      return v8.serialize(value);
    default:
      return v8.serialize(sanitize(value));
  }
}

/**
 * pack() for data that must arrive whatever it holds (socket details): a
 * part that cannot be sent arrives as null, the rest intact.
 */
function packLenient(value) {
  try {
    return pack(value);
  } catch {
    return v8.serialize(sanitize(value, { lenient: true }));
  }
}

// v8's serialization starts with its version tag; JSON text never does.
const V8_TAG = 0xff;

function unpack(buf) {
  return buf[0] === V8_TAG ? v8.deserialize(buf) : JSON.parse(buf.toString());
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

/**
 * Broadcast options as they travel (as JSON): rooms keep their JS type (1 is
 * not "1"), and NaN and the infinities, which JSON writes as null, travel as
 * `{ n: "NaN" }` and the like.
 */
function encodeOptions(opts) {
  return {
    rooms: roomsToWire(opts.rooms),
    except: opts.except ? roomsToWire(opts.except) : [],
    flags: opts.flags || {},
  };
}

function decodeOptions(o) {
  return { rooms: roomsFromWire(o.rooms), except: roomsFromWire(o.except), flags: o.flags || {} };
}

function roomsToWire(rooms) {
  const out = [];
  for (const room of rooms) out.push(typeof room === "number" && !Number.isFinite(room) ? { n: String(room) } : room);
  return out;
}

function roomsFromWire(rooms) {
  const out = new Set();
  for (const room of rooms) out.add(room !== null && typeof room === "object" ? Number(room.n) : room);
  return out;
}

module.exports = { pack, packLenient, unpack, splitParts, encodeOptions, decodeOptions };
