"use strict";
// Values crossing the harness's own IPC (worker -> primary -> test process).
// The worker<->primary channel is json for our package and advanced for the
// stock one, the primary<->test channel is always json: encode explicitly so
// that tests see the same values in both modes.

function toWire(value, depth = 0, seen = new WeakSet()) {
  // Meant for plain data: a live object graph (a Socket, a Server) is cut
  // short instead of being walked.
  if (depth > 12) return "[too deep]";
  if (value === undefined) return { __undefined: true };
  if (value === null || typeof value !== "object") {
    if (typeof value === "bigint") return { __bigint: String(value) };
    if (typeof value === "function") return { __function: value.name || "anonymous" };
    if (typeof value === "number" && !Number.isFinite(value)) return { __number: String(value) };
    return value;
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { __buffer: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  if (value instanceof Error) return { __error: { name: value.name, message: value.message } };
  if (seen.has(value)) return "[circular]";
  seen.add(value); // ancestors only: a shared, non-circular reference is encoded twice
  try {
    if (value instanceof Set) return { __set: [...value].map((v) => toWire(v, depth + 1, seen)) };
    if (value instanceof Map) {
      return { __map: [...value].map(([k, v]) => [toWire(k, depth + 1, seen), toWire(v, depth + 1, seen)]) };
    }
    if (Array.isArray(value)) return value.map((v) => toWire(v, depth + 1, seen));
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toWire(v, depth + 1, seen);
    return out;
  } finally {
    seen.delete(value);
  }
}

/** Inverse of toWire. Sets come back as Sets, Maps as Maps, Buffers as Buffers. */
function fromWire(value) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(fromWire);
  if (value.__undefined === true) return undefined;
  if (typeof value.__buffer === "string") return Buffer.from(value.__buffer, "base64");
  if (value.__error) {
    const err = new Error(value.__error.message);
    err.name = value.__error.name;
    return err;
  }
  if (value.__set) return new Set(value.__set.map(fromWire));
  if (value.__map) return new Map(value.__map.map(([k, v]) => [fromWire(k), fromWire(v)]));
  if (value.__bigint) return BigInt(value.__bigint);
  if (value.__number) return Number(value.__number);
  if (value.__function) return `[function ${value.__function}]`;
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = fromWire(v);
  return out;
}

/** Error details worth shipping back: message plus stack. */
function errorToWire(err) {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { name: "Error", message: String(err), stack: "" };
}

module.exports = { toWire, fromWire, errorToWire };
