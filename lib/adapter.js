"use strict";
// NodeClusterAdapter over the native hub. It extends socket.io-adapter's
// in-memory Adapter (rooms and sids stay JS Maps and Sets) and reproduces the
// cluster semantics of @socket.io/cluster-adapter 0.3.0: the same sync/async
// shape of every method, publish-then-apply ordering, exact error strings.
//
// Broadcasts travel already encoded: the emitter encodes the packet once with
// the server's own encoder, writes those bytes to its clients and ships them;
// receivers write them to their clients without parsing or re-encoding.

const { randomBytes } = require("node:crypto");
const { Adapter } = require("socket.io-adapter");
const debug = require("./debug").logger();
const { Kind, pack, packLenient, unpack, splitParts, encodeOptions, decodeOptions } = require("./codec");
const { acquireLink, publishHeader } = require("./link");
const { roomKey } = require("./keys");
const { ErrorCode } = require("./generated/error-codes");
const { resolveOptions } = require("./options");
const { findHub } = require("./hub-path");
const { IpcClusterAdapter } = require("./ipc-adapter");
const { HeldBroadcasts, hasOutgoingListeners } = require("./held");
const { kindsOf, framesOf, encodedOf } = require("./frames");

let hubUnusableWarned = false;

/** Says once per process why this worker cannot use its primary's hub. */
function warnHubUnusable(reason) {
  if (hubUnusableWarned) return;
  hubUnusableWarned = true;
  console.warn(`socket.io-cluster-rs: cannot use the hub (${reason}); this worker uses the ipc transport`);
}

function randomId() {
  return randomBytes(8).toString("hex");
}

function timeoutError(missing) {
  return new Error(`timeout reached: missing ${missing} responses`);
}

/**
 * partialResults mode: the answers that arrived, marked as incomplete, with
 * the process ids of the workers that did not answer in time.
 */
function markPartial(results, pids) {
  const missing = pids || [];
  // An Array subclass rather than properties on the array: socket.io's
  // fetchSockets() maps the adapter's answer into RemoteSockets, and map()
  // builds its result with the species of the array it maps, so the marks
  // survive into what the application gets.
  class PartialResults extends Array {
    get incomplete() {
      return true;
    }

    get missing() {
      return missing;
    }
  }
  return PartialResults.from(results);
}

class NodeClusterAdapter extends Adapter {
  /**
   * @param nsp - the namespace
   * @param opts - options of createAdapter()
   */
  constructor(nsp, opts) {
    opts = resolveOptions(opts);
    const hubPath = findHub(warnHubUnusable);
    if (!hubPath) {
      // No hub of ours (e.g. PM2's daemon runs the stock primary): speak the
      // stock protocol over Node's IPC channel instead.
      debug("no hub for primary pid %d: using the ipc transport (stock 0.3.0 protocol)", process.ppid);
      return new IpcClusterAdapter(nsp, opts);
    }
    debug("using the native hub at %s", hubPath);
    super(nsp);
    this.uid = randomId();
    this.transport = "native";
    // Kept for code and tests that read them on the stock adapter: `requests`
    // stays empty (bookkeeping lives in the hub), `ackRequests` holds the
    // broadcasts with acks until their timeout.
    this.requests = new Map();
    this.ackRequests = new Map();
    this._opts = opts;
    this._closed = false;
    // serverCount() answer for the broadcastWithAck() call in progress, see there.
    this._ackServerCount = null;
    // Remote broadcasts held until the end of the link's batch (see lib/held.js).
    this._remote = new HeldBroadcasts(this);
    // Hub headers of broadcasts to everyone and to one room (see _publishBroadcast()).
    this._everyoneHeader = null;
    this._roomHeaders = new Map();
    this._link = acquireLink(hubPath, opts);
    this._link.attach(this);
    // The hub routes room broadcasts only to workers with a member in the
    // room, so it must know which rooms have local members here.
    this._onCreateRoom = (room) => this._link.roomAdd(this.nsp.name, room);
    this._onDeleteRoom = (room) => this._link.roomDel(this.nsp.name, room);
    this.on("create-room", this._onCreateRoom);
    this.on("delete-room", this._onDeleteRoom);
  }

  /** Instances of either transport count as NodeClusterAdapter. */
  static [Symbol.hasInstance](obj) {
    return Function.prototype[Symbol.hasInstance].call(this, obj) || obj instanceof IpcClusterAdapter;
  }

  /** Registration happens in the constructor; kept for the Adapter contract. */
  init() {}

  close() {
    if (this._closed) return;
    this._closed = true;
    this.off("create-room", this._onCreateRoom);
    this.off("delete-room", this._onDeleteRoom);
    this._link.detach(this);
  }

  /**
   * Counters of this worker's connection to the hub (shared by all its
   * namespaces): messages and bytes in and out, messages the hub dropped for
   * this worker, pending requests.
   */
  stats() {
    return this._link.stats();
  }

  serverCount() {
    if (this._ackServerCount) return this._ackServerCount;
    if (this._closed) return Promise.resolve(1);
    return this._link.count(this.nsp.name);
  }

  // ---- broadcasts ----------------------------------------------------------

  broadcast(packet, opts) {
    const flags = opts.flags || {};
    const packetOpts = { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
    packet.nsp = this.nsp.name;
    const encoded = this._encode(packet, packetOpts);
    let error = null;
    // A BROADCAST payload: [meta, ...frames] (see broadcastParts()).
    let parts = null;
    if (!flags.local && !this._targetsOneLocalSocket(opts)) {
      try {
        parts = broadcastParts(opts, flags, encoded, packetOpts);
        this._publishBroadcast(opts, !!flags.volatile, parts);
      } catch (err) {
        error = err;
        debug("[%s] error while broadcasting message: %s", this.uid, err.message);
      }
    }
    if (flags.local) {
      this._deliver(opts, encoded, packetOpts, () => packet);
      return Promise.resolve();
    }
    // Local delivery happens after one tick, as in the stock adapter, so that
    // `io.emit("bye"); io.disconnectSockets()` keeps its order everywhere.
    const delivered = holdLocal(this, parts, opts, encoded, packetOpts, packet);
    // Only a payload over maxFrameSize fails the emit itself: it can never be
    // delivered remotely, and the caller must hear it. Local clients still get it.
    if (error && error.code === ErrorCode.FRAME_TOO_LARGE) throw error;
    return delivered;
  }

  /**
   * The hub routes by namespace and rooms only: the header of a broadcast to
   * everyone or to one room is encoded once and reused (bounded like
   * oneRoom()'s cache), which saves converting and encoding it per emit.
   */
  _publishBroadcast(opts, volatile, parts) {
    if (volatile || opts.rooms.size > 1) {
      return this._link.publish(this.nsp.name, Kind.BROADCAST, volatile, targetRooms(opts), parts);
    }
    let header;
    if (opts.rooms.size === 0) {
      header = this._everyoneHeader ??= publishHeader(this.nsp.name, Kind.BROADCAST, false, []);
    } else {
      const room = opts.rooms.values().next().value;
      header = this._roomHeaders.get(room);
      if (header === undefined) {
        if (this._roomHeaders.size >= ONE_ROOM_CACHE) this._roomHeaders.clear();
        header = publishHeader(this.nsp.name, Kind.BROADCAST, false, oneRoom(room).keys);
        this._roomHeaders.set(room, header);
      }
    }
    this._link.publishWith(header, parts);
  }

  broadcastWithAck(packet, opts, clientCountCallback, ack) {
    const flags = (opts && opts.flags) || {};
    if (flags.local) {
      // io.local acks only wait for this server (the stock adapter counted
      // every server and always timed out).
      this._setAckServerCount(Promise.resolve(1));
      return super.broadcastWithAck(packet, opts, clientCountCallback, ack);
    }
    const timeout = flags.timeout === undefined ? this._opts.requestsTimeout : flags.timeout;
    packet.nsp = this.nsp.name;
    // Shipped without an id: every receiver assigns its own (packet ids are per namespace and server).
    const encoded = this.encoder.encode(packet);
    let resolveCount;
    this._setAckServerCount(new Promise((r) => (resolveCount = r)));
    const requestId = randomId();
    try {
      const parts = [Buffer.from(JSON.stringify([encodeOptions(opts), kindsOf(encoded)])), ...toBuffers(encoded)];
      // Client counts are reported per node only once all of that node's acks
      // arrived, so that a node dying half-way can be settled with the acks it
      // did deliver instead of leaving the emit waiting for its timeout.
      const nodes = new Map(); // node → { count, acks, reported }
      const report = (st, n) => {
        if (st.reported) return;
        st.reported = true;
        clientCountCallback(n);
      };
      this._link.request(this.nsp.name, Kind.BROADCAST, timeout, true, targetRooms(opts), parts, {
        accepted: (expected) => resolveCount(1 + expected),
        reply: (from, payload) => {
          const msg = unpack(splitParts(payload)[0]);
          let st = nodes.get(from);
          if (!st) {
            st = { count: 0, acks: 0, reported: false };
            nodes.set(from, st);
          }
          if (msg.c !== undefined) {
            st.count = msg.c;
            if (st.acks >= st.count) report(st, st.count);
          } else {
            // A node already settled (it was dropped while its event loop was
            // blocked, then came back) is not counted again: socket.io
            // completes the emit only when the acks match the counts exactly.
            if (st.reported) return;
            st.acks++;
            ack(msg.a);
            if (st.acks >= st.count && st.count > 0) report(st, st.count);
          }
        },
        departed: (node) => {
          const st = nodes.get(node);
          if (!st) {
            nodes.set(node, { count: 0, acks: 0, reported: true });
            clientCountCallback(0);
          } else report(st, st.acks);
        },
        down: () => resolveCount(1),
      });
      this.ackRequests.set(requestId, { clientCountCallback, ack });
      setTimeout(() => this.ackRequests.delete(requestId), timeout);
    } catch (err) {
      debug("[%s] error while broadcasting with ack: %s", this.uid, err.message);
      resolveCount(1);
    }
    super.broadcastWithAck(packet, opts, clientCountCallback, ack);
  }

  // ---- room and socket operations ------------------------------------------

  addSockets(opts, rooms) {
    return this._publishThenApply(opts, Kind.SOCKETS_JOIN, { rooms }, () =>
      super.addSockets(opts, rooms),
    );
  }

  delSockets(opts, rooms) {
    return this._publishThenApply(opts, Kind.SOCKETS_LEAVE, { rooms }, () =>
      super.delSockets(opts, rooms),
    );
  }

  disconnectSockets(opts, close) {
    return this._publishThenApply(opts, Kind.DISCONNECT_SOCKETS, { close }, () =>
      super.disconnectSockets(opts, close),
    );
  }

  async _publishThenApply(opts, kind, data, apply) {
    // Local broadcasts made before this operation are delivered before it is
    // applied, those made after it after.
    closeLocalGroup();
    if (!(opts.flags && opts.flags.local)) {
      try {
        const parts = [pack({ opts: encodeOptions(opts), ...data })];
        this._link.publish(this.nsp.name, kind, false, targetRooms(opts), parts);
      } catch (err) {
        debug("[%s] error while publishing message: %s", this.uid, err.message);
      }
      await null;
    }
    apply();
  }

  // ---- requests --------------------------------------------------------------

  async fetchSockets(opts) {
    const localSockets = await super.fetchSockets({
      rooms: opts.rooms,
      except: opts.except,
      flags: { local: true },
    });
    if (opts.flags && opts.flags.local) return localSockets;
    const timeout = (opts.flags && opts.flags.timeout) || this._opts.requestsTimeout;
    const parts = [pack(encodeOptions(opts))];
    return new Promise((resolve, reject) => {
      const responses = localSockets;
      // Workers whose answer left sockets out (too large for maxFrameSize).
      const short = [];
      this._link.request(this.nsp.name, Kind.FETCH_SOCKETS, timeout, false, targetRooms(opts), parts, {
        reply: (from, payload) => {
          const p = splitParts(payload);
          if (p.length) for (const s of unpack(p[0])) responses.push(s);
          if (p.length > 1) short.push(unpack(p[1]));
        },
        done: () => {
          if (short.length === 0) return resolve(responses);
          const n = short.reduce((sum, s) => sum + s.leftOut, 0);
          debug("[%s] fetchSockets(): %d socket(s) too large for maxFrameSize were left out", this.uid, n);
          resolve(markPartial(responses, short.map((s) => s.pid)));
        },
        timedOut: (missing, pids) =>
          this._opts.partialResults ? resolve(markPartial(responses, pids)) : reject(timeoutError(missing)),
        down: (reason) => reject(new Error(`socket.io-cluster-rs: fetchSockets failed: ${reason}`)),
      });
    });
  }

  serverSideEmit(packet) {
    const withAck = typeof packet[packet.length - 1] === "function";
    if (!withAck) {
      // Synchronous on purpose: an argument that cannot be sent, or a lost
      // hub, throws out of io.serverSideEmit() instead of becoming an
      // unhandled rejection that socket.io would never see.
      this._link.publish(this.nsp.name, Kind.SERVER_SIDE_EMIT, false, [], [pack(packet)]);
      return Promise.resolve();
    }
    const ack = packet.pop();
    const responses = [];
    let parts;
    try {
      parts = [pack(packet)];
      this._link.request(this.nsp.name, Kind.SERVER_SIDE_EMIT, this._opts.requestsTimeout, false, [], parts, {
        reply: (from, payload) => {
          const p = splitParts(payload);
          if (p.length) responses.push(unpack(p[0]));
        },
        done: () => ack(null, responses),
        timedOut: (missing, pids) =>
          this._opts.partialResults
            ? ack(null, markPartial(responses, pids))
            : ack(timeoutError(missing), responses),
        down: (reason) => ack(new Error(`socket.io-cluster-rs: serverSideEmit failed: ${reason}`), responses),
      });
    } catch (err) {
      ack(err, responses);
    }
    return Promise.resolve();
  }

  // ---- what other workers send ---------------------------------------------

  /** A published message from another worker. Called by the link. */
  onClusterMessage(kind, payload) {
    const parts = splitParts(payload);
    if (kind !== Kind.BROADCAST) this.flushRemote();
    switch (kind) {
      case Kind.BROADCAST:
        return this._onRemoteBroadcast(parts);
      case Kind.SOCKETS_JOIN: {
        const m = unpack(parts[0]);
        return super.addSockets(decodeOptions(m.opts), m.rooms);
      }
      case Kind.SOCKETS_LEAVE: {
        const m = unpack(parts[0]);
        return super.delSockets(decodeOptions(m.opts), m.rooms);
      }
      case Kind.DISCONNECT_SOCKETS: {
        const m = unpack(parts[0]);
        return super.disconnectSockets(decodeOptions(m.opts), m.close);
      }
      case Kind.SERVER_SIDE_EMIT:
        return this.nsp._onServerSideEmit(unpack(parts[0]));
      default:
        debug("[%s] unknown message kind %d", this.uid, kind);
    }
  }

  /** A request from another worker, to answer with `id`. Called by the link. */
  onClusterRequest(id, kind, payload) {
    const parts = splitParts(payload);
    const link = this._link;
    switch (kind) {
      case Kind.BROADCAST: {
        const [o, kinds] = JSON.parse(parts[0].toString());
        const packet = this._decodePacket(fromBuffers(parts.slice(1), kinds));
        let expected = -1;
        let acks = 0;
        return super.broadcastWithAck(
          packet,
          decodeOptions(o),
          (count) => {
            expected = count;
            link.respond(id, count === 0, [pack({ c: count })]);
          },
          (arg) => {
            acks++;
            link.respond(id, acks === expected, [safePack({ a: arg }, { a: null })]);
          },
        );
      }
      case Kind.FETCH_SOCKETS: {
        const opts = decodeOptions(unpack(parts[0]));
        return super
          .fetchSockets(opts)
          .then((sockets) => respondWithSockets(link, id, sockets, this.uid))
          .catch((err) => {
            debug("[%s] cannot answer fetchSockets: %s", this.uid, err.message);
            link.respond(id, true, []);
          });
      }
      case Kind.SERVER_SIDE_EMIT: {
        let called = false;
        const args = unpack(parts[0]);
        return this.nsp._onServerSideEmit([
          ...args,
          (arg) => {
            // Only the first call and its first argument count, as in the stock adapter.
            if (called) return;
            called = true;
            link.respond(id, true, [safePack(arg, null)]);
          },
        ]);
      }
      default:
        link.respond(id, true, []);
    }
  }

  _onRemoteBroadcast(parts) {
    const meta = parts[0];
    const held = this._remote;
    const frame = parts.slice(1);
    if (held.extend(meta, frame)) return;
    const { opts, volatile, compress, kinds } = readMeta(meta);
    if (!volatile) {
      // Held until the end of the link's batch (or the next message of
      // another kind), see flushRemote().
      held.startRun(meta, opts, compress, kinds, frame);
      return;
    }
    held.flush();
    const packetOpts = { preEncoded: true, volatile: 1, compress };
    // A text message is written as its frame, anything else part by part.
    if (kinds === "s") packetOpts.wsPreEncodedFrame = frame;
    const encoded = encodedOf(frame, kinds);
    let packet = null;
    this._deliver(opts, encoded, packetOpts, () => packet || (packet = this._decodePacket(encoded)));
  }

  /** Delivers the held remote broadcasts (the link calls this at the end of its batch). */
  flushRemote() {
    this._remote.flush();
  }

  // ---- helpers -------------------------------------------------------------

  /** Writes already-encoded packets to the matching local sockets. */
  _deliver(opts, encoded, packetOpts, getPacket) {
    this.apply(opts, (socket) => {
      // onAnyOutgoing listeners need the decoded packet; decode only for them.
      if (hasOutgoingListeners(socket)) {
        socket.notifyOutgoingListeners(getPacket());
      }
      socket.client.writeToEngine(encoded, packetOpts);
    });
  }

  /** Decodes encoder output back into a packet with the server's own parser. */
  _decodePacket(encoded) {
    const decoder = new this.nsp.server._parser.Decoder();
    let packet = null;
    decoder.on("decoded", (p) => (packet = p));
    for (const part of encoded) decoder.add(part);
    if (!packet) throw new Error("could not decode a broadcast packet");
    delete packet.id;
    return packet;
  }

  /**
   * True when the broadcast targets exactly one socket id of this worker
   * (`socket.emit` under connection state recovery, `io.to(localId).emit`):
   * nobody else can have that socket, so nothing is published.
   */
  _targetsOneLocalSocket(opts) {
    if (opts.rooms.size !== 1 || (opts.except && opts.except.size)) return false;
    const [room] = opts.rooms;
    return this.nsp.sockets.has(room);
  }

  _setAckServerCount(promise) {
    // socket.io calls serverCount() right after broadcastWithAck(); answering
    // with the number of servers the hub actually asked keeps the two counts
    // consistent even while workers join or leave.
    this._ackServerCount = promise;
    queueMicrotask(() => {
      if (this._ackServerCount === promise) this._ackServerCount = null;
    });
  }
}

// Local broadcasts of one synchronous stretch of code are held together and
// delivered in one microtask, the one where the first of them would have been
// delivered anyway: a client gets them in one write (see lib/held.js). One
// open group for the whole process: namespaces share client connections, so a
// broadcast of another namespace starts a new group, as does any operation
// applied after a microtask (socketsJoin, disconnectSockets...): each group's
// microtask then runs in the order of the calls.
let openGroup = null;

function holdLocal(adapter, parts, opts, encoded, packetOpts, packet) {
  let group = openGroup;
  if (group === null || group.adapter !== adapter) {
    group = openGroup = { adapter, held: new HeldBroadcasts(adapter), delivered: null };
    group.delivered = Promise.resolve().then(() => {
      if (openGroup === group) openGroup = null;
      try {
        group.held.flush();
      } catch (err) {
        // socket.io does not look at broadcast()'s promise: a rejection would be unhandled.
        debug("error while delivering broadcasts: %s", err && err.stack);
      }
    });
  }
  const held = group.held;
  if (parts === null || packetOpts.volatile) {
    held.addPlain(opts, encoded, packetOpts, () => packet);
    return group.delivered;
  }
  const meta = parts[0];
  const frame = packetOpts.wsPreEncodedFrame || parts.slice(1);
  if (!held.extend(meta, frame, encoded, packet)) {
    held.startRun(meta, opts, packetOpts.compress, kindsOf(encoded), frame, encoded, packet);
  }
  return group.delivered;
}

function closeLocalGroup() {
  openGroup = null;
}

// Decoded meta parts of remote broadcasts, by their text: a receiver sees the
// same few (one per room, for `io.to(room).emit()`) over and over. The
// options in them are shared and only ever read (apply()). Bounded like
// oneRoom()'s cache.
const metaCache = new Map();

function readMeta(meta) {
  const key = meta.toString("latin1");
  let m = metaCache.get(key);
  if (m === undefined) {
    const [o, volatile, compress, kinds] = JSON.parse(meta.toString());
    m = { opts: decodeOptions(o), volatile, compress, kinds };
    if (metaCache.size >= ONE_ROOM_CACHE) metaCache.clear();
    metaCache.set(key, m);
  }
  return m;
}

/** JSON keys of the rooms an operation targets; empty means every worker. */
function targetRooms(opts) {
  if (opts.rooms.size === 1) return oneRoom(opts.rooms.values().next().value).keys;
  const keys = [];
  for (const room of opts.rooms) keys.push(roomKey(room));
  return keys;
}

// What `io.to(room).emit()` sends for a room, made once per room: the hub's
// room key and the meta part of a broadcast with no except and no flags.
// Bounded: an app with more rooms than this starts over.
const ONE_ROOM_CACHE = 1024;
const oneRoomCache = new Map();

function oneRoom(room) {
  let entry = oneRoomCache.get(room);
  if (entry === undefined) {
    if (oneRoomCache.size >= ONE_ROOM_CACHE) oneRoomCache.clear();
    const opts = encodeOptions({ rooms: new Set([room]) });
    entry = { keys: [roomKey(room)], meta: Buffer.from(JSON.stringify([opts, 0, null, "s"])) };
    oneRoomCache.set(room, entry);
  }
  return entry;
}

function toBuffers(encoded) {
  return encoded.map((e) => (typeof e === "string" ? Buffer.from(e) : Buffer.from(e.buffer, e.byteOffset, e.byteLength)));
}

function fromBuffers(parts, kinds) {
  return parts.map((b, i) => (kinds[i] === "s" ? b.toString() : b));
}

// The meta part of `io.emit()` of one text part (everyone, no flags), the
// most common broadcast (`io.to(room).emit()` comes second, see oneRoom()).
const EVERYONE_TEXT_META = Buffer.from(JSON.stringify([encodeOptions({ rooms: new Set() }), 0, null, "s"]));

/**
 * A broadcast as it travels: a meta part `[options, volatile, compress,
 * kinds]` (JSON), then the WebSocket frames of the encoded packet (see
 * lib/frames.js; Socket.IO made the frame of a single text part already).
 */
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

/** Packs `value`, or `fallback` when it cannot be sent (logged, never thrown). */
function safePack(value, fallback) {
  try {
    return pack(value);
  } catch (err) {
    debug("cannot send value to another worker: %s", err.message);
    return pack(fallback);
  }
}

/**
 * Answers fetchSockets request `id` with `sockets`, in as many frames as it
 * takes: one when the answer fits (the usual case), halves of it otherwise.
 * A single socket too large for any frame is left out, and the last frame
 * says how many were, and by whom, so that the requester's result is marked
 * incomplete instead of silently short.
 */
function respondWithSockets(link, id, sockets, uid) {
  const details = sockets.map((socket) => {
    // sessionStore may hold circular references (express-session).
    const { sessionStore, ...handshake } = socket.handshake;
    return { id: socket.id, handshake, rooms: [...socket.rooms], data: socket.data };
  });
  const budget = link.maxPayload();
  const chunks = [];
  let leftOut = 0;
  const split = (list) => {
    // A value that cannot be sent arrives as null, the rest of the socket intact.
    const packed = packLenient(list);
    if (packed.length <= budget) chunks.push(packed);
    else if (list.length === 1) leftOut++;
    else {
      split(list.slice(0, list.length >> 1));
      split(list.slice(list.length >> 1));
    }
  };
  split(details);
  if (leftOut > 0) debug("[%s] %d socket(s) too large for maxFrameSize left out of a fetchSockets() answer", uid, leftOut);
  const last = leftOut > 0 ? [pack({ leftOut, pid: process.pid })] : [];
  if (chunks.length === 0) return link.respond(id, true, [pack([]), ...last]);
  chunks.forEach((chunk, i) => link.respond(id, i === chunks.length - 1, i === chunks.length - 1 ? [chunk, ...last] : [chunk]));
}

module.exports = { NodeClusterAdapter };
