"use strict";
// Message payloads shared by the emitter (worker.js) and the receiver (client.js).
//
// Every payload carries (scenario id, emitter worker, sequence number, send
// time) inside the payload itself, so the measured message really is the stated
// size and type. The send time is CLOCK_MONOTONIC in ns (process.hrtime.bigint()),
// which on Linux is one clock for all processes of the machine, so a client can
// subtract a worker's timestamp from its own.
//
//   string: "<sid>:<w>:<seq>:<tNs>:" then 'x' padding up to `size` characters (ASCII)
//   buffer: u32le sid @0, u32le w @4, u32le seq @8, f64le tNs @16, 0xab padding

const nowNs = () => Number(process.hrtime.bigint()); // exact below 2^53 ns (~104 days of uptime)

/** Returns make(sid, w, seq) producing a fresh payload stamped with the current time. */
function payloadFactory(kind, size) {
  if (kind === "str") {
    const pad = "x".repeat(size);
    return (sid, w, seq) => {
      const head = `${sid}:${w}:${seq}:${nowNs()}:`;
      return head + pad.slice(head.length);
    };
  }
  if (kind === "buf") {
    const template = Buffer.alloc(size, 0xab);
    // A new Buffer per message: adapters may keep a reference after emit() returns.
    return (sid, w, seq) => {
      const b = Buffer.allocUnsafe(size);
      template.copy(b);
      b.writeUInt32LE(sid, 0);
      b.writeUInt32LE(w, 4);
      b.writeUInt32LE(seq, 8);
      b.writeDoubleLE(nowNs(), 16);
      return b;
    };
  }
  throw new Error(`unknown payload kind ${kind}`);
}

/**
 * Decodes a received payload into `out` (reused to avoid garbage) and returns it,
 * or null if it cannot be decoded at all. out.kind is what actually arrived:
 * "str", "buf", or "bufjson" (a Buffer flattened to {type:"Buffer",data:[...]}
 * by JSON serialization on the way).
 */
function decodePayload(p, out) {
  let b;
  if (typeof p === "string") {
    const a = p.indexOf(":");
    const c = p.indexOf(":", a + 1);
    const d = p.indexOf(":", c + 1);
    const e = p.indexOf(":", d + 1);
    if (e < 0) return null;
    out.kind = "str";
    out.sid = +p.slice(0, a);
    out.w = +p.slice(a + 1, c);
    out.seq = +p.slice(c + 1, d);
    out.t = +p.slice(d + 1, e);
    out.size = p.length;
    return out;
  }
  if (p instanceof Uint8Array) {
    out.kind = "buf";
    b = Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  } else if (p instanceof ArrayBuffer) {
    out.kind = "buf";
    b = Buffer.from(p);
  } else if (p && p.type === "Buffer" && Array.isArray(p.data)) {
    out.kind = "bufjson";
    b = Buffer.from(p.data.slice(0, 24));
    out.size = p.data.length;
  } else return null;
  if (b.length < 24) return null;
  if (out.kind === "buf") out.size = b.length;
  out.sid = b.readUInt32LE(0);
  out.w = b.readUInt32LE(4);
  out.seq = b.readUInt32LE(8);
  out.t = b.readDoubleLE(16);
  return out;
}

module.exports = { nowNs, payloadFactory, decodePayload };
