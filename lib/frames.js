"use strict";
// A broadcast travels between workers as the WebSocket frames its clients
// get: one frame per part of the Socket.IO encoder's output, a text frame
// ("4" + the string: an Engine.IO message) for a string part and a binary
// frame for a binary part (attachments of the default parser, or the whole
// packet with a binary parser such as msgpack). Receivers write those bytes to
// WebSocket clients as they are; for any other client they get the encoder's
// output back from the frames.
//
// A message's frame list is [header, payload] per part, in order; `kinds`
// says "s" or "b" per part.

const TEXT = 0x1;
const BINARY = 0x2;
const FIN = 0x80;

/** "s" or "b" per part of the encoder's output. */
function kindsOf(encoded) {
  let k = "";
  for (const e of encoded) k += typeof e === "string" ? "s" : "b";
  return k;
}

/**
 * The frame list of an encoder output. `textFrame` is the frame Socket.IO
 * already made for a single string part, if any.
 */
function framesOf(encoded, textFrame) {
  if (textFrame !== undefined) return textFrame;
  const frames = [];
  for (const e of encoded) {
    if (typeof e === "string") {
      const payload = Buffer.from("4" + e);
      frames.push(header(TEXT, payload.length), payload);
    } else {
      const payload = asBuffer(e);
      frames.push(header(BINARY, payload.length), payload);
    }
  }
  return frames;
}

/** The encoder's output back from a frame list (strings and Buffers). */
function encodedOf(frames, kinds) {
  const out = new Array(kinds.length);
  for (let i = 0; i < kinds.length; i++) {
    const payload = frames[2 * i + 1];
    out[i] = kinds[i] === "s" ? payload.toString("utf8", 1) : payload;
  }
  return out;
}

/**
 * A frame list as `ws` writes a precomputed frame: its Sender takes a list
 * of one or two buffers only.
 */
function asWsFrame(frames) {
  return frames.length <= 2 ? frames : [Buffer.concat(frames)];
}

/** An unmasked, final, uncompressed WebSocket frame header (RFC 6455, 5.2). */
function header(opcode, length) {
  let h;
  if (length < 126) {
    h = Buffer.allocUnsafe(2);
    h[1] = length;
  } else if (length < 65536) {
    h = Buffer.allocUnsafe(4);
    h[1] = 126;
    h.writeUInt16BE(length, 2);
  } else {
    h = Buffer.allocUnsafe(10);
    h[1] = 127;
    h.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    h.writeUInt32BE(length >>> 0, 6);
  }
  h[0] = FIN | opcode;
  return h;
}

function asBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data); // ArrayBuffer: a view, no copy
}

module.exports = { kindsOf, framesOf, encodedOf, asWsFrame };
