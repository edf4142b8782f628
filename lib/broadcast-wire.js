"use strict";
// How a broadcast travels between workers, and the caches that spare the
// common cases (`io.emit()`, `io.to(room).emit()`) from re-encoding their
// targets on every emit.
//
// A broadcast is a meta part `[options, volatile, compress, kinds]` (JSON),
// then the WebSocket frames of the encoded packet (see lib/frames.js;
// Socket.IO made the frame of a single text part already).

const { encodeOptions, decodeOptions } = require("./codec");
const { framesOf, kindsOf } = require("./frames");
const { roomKey } = require("./keys");
const { publishHeader } = require("./link");
const { Kind } = require("./stock-protocol");

// Entries each cache keeps at most: an app with more rooms than this starts over.
const CACHE_LIMIT = 1024;

// What `io.to(room).emit()` sends for a room, made once per room: the hub's
// room key and the meta part of a broadcast with no except and no flags.
const oneRoomCache = new Map();

function oneRoom(room) {
  let entry = oneRoomCache.get(room);
  if (entry === undefined) {
    if (oneRoomCache.size >= CACHE_LIMIT) oneRoomCache.clear();
    const opts = encodeOptions({ rooms: new Set([room]) });
    entry = { keys: [roomKey(room)], meta: Buffer.from(JSON.stringify([opts, 0, null, "s"])) };
    oneRoomCache.set(room, entry);
  }
  return entry;
}

// The meta part of `io.emit()` of one text part (everyone, no flags), the
// most common broadcast (`io.to(room).emit()` comes second, see oneRoom()).
const EVERYONE_TEXT_META = Buffer.from(JSON.stringify([encodeOptions({ rooms: new Set() }), 0, null, "s"]));

/** Meta part and frames of a broadcast of `encoded` (the encoder's output). */
function broadcastParts(opts, flags, encoded, packetOpts) {
  const text = packetOpts.wsPreEncodedFrame;
  const frames = framesOf(encoded, text);
  if (text !== undefined && opts.rooms.size <= 1 && !(opts.except && opts.except.size) && isEmpty(flags)) {
    const meta = opts.rooms.size === 0 ? EVERYONE_TEXT_META : oneRoom(opts.rooms.values().next().value).meta;
    return [meta, ...frames];
  }
  const volatile = flags.volatile ? 1 : 0;
  const compress = flags.compress === undefined ? null : flags.compress;
  const kinds = text !== undefined ? "s" : kindsOf(encoded);
  return [Buffer.from(JSON.stringify([encodeOptions(opts), volatile, compress, kinds])), ...frames];
}

function isEmpty(obj) {
  for (const _ in obj) return false;
  return true;
}

// Decoded meta parts of remote broadcasts, by their text: a receiver sees the
// same few (one per room, for `io.to(room).emit()`) over and over. The
// options in them are shared and only ever read (apply()).
const metaCache = new Map();

/** A received meta part: `{ opts, volatile, compress, kinds }`. */
function readMeta(meta) {
  const key = meta.toString("latin1");
  let m = metaCache.get(key);
  if (m === undefined) {
    const [o, volatile, compress, kinds] = JSON.parse(meta.toString());
    m = { opts: decodeOptions(o), volatile, compress, kinds };
    if (metaCache.size >= CACHE_LIMIT) metaCache.clear();
    metaCache.set(key, m);
  }
  return m;
}

/** Hub keys of the rooms an operation targets; empty means every worker. */
function targetRooms(opts) {
  if (opts.rooms.size === 1) return oneRoom(opts.rooms.values().next().value).keys;
  const keys = [];
  for (const room of opts.rooms) keys.push(roomKey(room));
  return keys;
}

/**
 * The hub headers of one namespace's broadcasts to everyone and to one room,
 * encoded once and reused: the hub routes by namespace and rooms only, so
 * these are the same for every such emit.
 */
class PublishHeaders {
  constructor(nsp) {
    this.nsp = nsp;
    this.everyone = null;
    this.byRoom = new Map();
  }

  /** The header for `opts` (not volatile), or null when it targets several rooms. */
  get(opts) {
    if (opts.rooms.size === 0) return (this.everyone ??= publishHeader(this.nsp, Kind.BROADCAST, false, []));
    if (opts.rooms.size > 1) return null;
    const room = opts.rooms.values().next().value;
    let header = this.byRoom.get(room);
    if (header === undefined) {
      if (this.byRoom.size >= CACHE_LIMIT) this.byRoom.clear();
      header = publishHeader(this.nsp, Kind.BROADCAST, false, oneRoom(room).keys);
      this.byRoom.set(room, header);
    }
    return header;
  }
}

/** The encoder's output as Buffers, to travel. */
function toBuffers(encoded) {
  return encoded.map((e) => (typeof e === "string" ? Buffer.from(e) : Buffer.from(e.buffer, e.byteOffset, e.byteLength)));
}

/** The encoder's output back from its travelling Buffers; `kinds` says "s" or "b" per part. */
function fromBuffers(parts, kinds) {
  return parts.map((b, i) => (kinds[i] === "s" ? b.toString() : b));
}

module.exports = { broadcastParts, readMeta, targetRooms, PublishHeaders, toBuffers, fromBuffers };
