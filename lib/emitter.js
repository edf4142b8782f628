"use strict";
// The emitter: Socket.IO operations from outside the workers, with the shape
// of @socket.io/redis-emitter. From the primary (`setupPrimary().emitter`) or
// from any other process of the same user on the host (`createEmitter()`).
//
// It is a peer of the hub like a worker, but one that serves no namespace: the
// hub never routes broadcasts or requests to it and never counts it in
// serverCount(). What it sends has the exact shape a worker's adapter sends
// (lib/broadcast-wire.js, lib/requests.js), so workers deliver and answer it
// as if another worker had sent it.

const os = require("node:os");
const { randomBytes } = require("node:crypto");
const { kindsOf, framesOf } = require("./frames");
const { pack, encodeOptions } = require("./codec");
const { acquireLink } = require("./link");
const { resolveOptions } = require("./options");
const { Kind } = require("./stock-protocol");
const { broadcastParts, targetRooms, toBuffers, PublishHeaders } = require("./broadcast-wire");
const requests = require("./requests");
const binding = require("./native");

// Socket.IO's reserved event names: emitting them would confuse clients.
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);
const EVENT = 2; // socket.io-parser PacketType.EVENT

function defaultParser() {
  return require("socket.io-parser");
}

/** A namespace name as Socket.IO writes it ("/" first). */
function nspName(nsp) {
  if (typeof nsp !== "string") throw new TypeError(`socket.io-cluster-rs emitter: a namespace must be a string, got ${typeof nsp}`);
  return nsp.startsWith("/") ? nsp : `/${nsp}`;
}

/**
 * Operations on one namespace, and the start of a chain of targets and flags
 * (`to()`, `except()`, `volatile`, `compress()`, `timeout()`), as on a
 * Socket.IO server.
 */
class Emitter {
  /** @internal use setupPrimary().emitter or createEmitter() */
  constructor(link, nsp, opts, encoder, shared) {
    this._nsp = nsp;
    // Hub headers of broadcasts to everyone and to one room, made once.
    this._headers = new PublishHeaders(nsp);
    this._opts = opts;
    this._encoder = encoder;
    // What every namespace of one emitter shares: the link, the emitters by
    // namespace, and whether close() was called.
    this._shared = shared || { link, namespaces: new Map(), closed: false };
  }

  /**
   * Runs `fn(link)` now, or, before the first handshake, once it is done:
   * what the emitter sends keeps its order (broadcasts wait for it, see
   * emitBroadcast()). Deferred calls return true; their errors go to the
   * caller's callbacks where there are some, to the debug log otherwise.
   */
  _send(fn) {
    const link = this._link;
    if (!link.handshaking) return fn(link);
    link.afterHandshake(() => fn(link));
    return true;
  }

  /**
   * Sends request `kind` of this namespace through _send(); `fail` hears
   * why it could not be sent (the handler hears everything else).
   */
  _request(kind, timeoutMs, rooms, parts, handler, fail) {
    this._send((link) => {
      try {
        link.request(this._nsp, kind, timeoutMs, false, rooms, parts, handler);
      } catch (err) {
        fail(err);
      }
    });
  }

  /** The connection to the hub; throws once the emitter is closed. */
  get _link() {
    if (this._shared.closed) throw new Error("socket.io-cluster-rs emitter: the emitter was closed");
    return this._shared.link;
  }

  /** The emitter of another namespace (the same connection). */
  of(nsp) {
    const name = nspName(nsp);
    if (name === this._nsp) return this;
    const { namespaces } = this._shared;
    let e = namespaces.get(name);
    if (!e) {
      e = new Emitter(null, name, this._opts, this._encoder, this._shared);
      namespaces.set(name, e);
    }
    return e;
  }

  _op() {
    return new BroadcastOperator(this, new Set(), new Set(), {});
  }

  emit(ev, ...args) {
    return emitBroadcast(this, EVERYONE, {}, ev, args);
  }

  emitWithAck(ev, ...args) {
    return this._op().emitWithAck(ev, ...args);
  }

  to(room) {
    return this._op().to(room);
  }

  in(room) {
    return this._op().in(room);
  }

  except(room) {
    return this._op().except(room);
  }

  get volatile() {
    return this._op().volatile;
  }

  compress(compress) {
    return this._op().compress(compress);
  }

  timeout(ms) {
    return this._op().timeout(ms);
  }

  socketsJoin(rooms) {
    return this._op().socketsJoin(rooms);
  }

  socketsLeave(rooms) {
    return this._op().socketsLeave(rooms);
  }

  disconnectSockets(close = false) {
    return this._op().disconnectSockets(close);
  }

  fetchSockets() {
    return this._op().fetchSockets();
  }

  /**
   * Emits to the namespace's server-side listeners (`io.on(ev)`) of every
   * worker. With a function last, it gets `(err, responses)` as with
   * `io.serverSideEmit()`.
   */
  serverSideEmit(ev, ...args) {
    checkEvent(ev);
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (!ack) {
      const parts = [pack([ev, ...args])];
      this._send((link) => link.publish(this._nsp, Kind.SERVER_SIDE_EMIT, false, [], parts));
      return true;
    }
    const tally = requests.serverSideTally(this._opts.partialResults, ack);
    const parts = [pack([ev, ...args])];
    this._request(Kind.SERVER_SIDE_EMIT, this._opts.requestsTimeout, [], parts, tally, (err) => ack(err, []));
    return true;
  }

  serverSideEmitWithAck(ev, ...args) {
    return new Promise((resolve, reject) => {
      this.serverSideEmit(ev, ...args, (err, responses) => (err ? reject(err) : resolve(responses)));
    });
  }

  /** The rooms sockets joined in this namespace on every worker (each socket's own room left out). */
  allRooms() {
    return this._roomQuery({}, [], new Set());
  }

  /** How many sockets are in `room` on every worker. */
  roomSize(room) {
    return this._roomQuery({ room }, targetRooms({ rooms: new Set([room]) }), 0);
  }

  _roomQuery(query, rooms, initial) {
    return new Promise((resolve, reject) => {
      const tally = requests.roomTally(initial, this._opts.partialResults, resolve, reject);
      this._request(Kind.ROOM_QUERY, this._opts.requestsTimeout, rooms, [pack(query)], tally, reject);
    });
  }

  /** Number of workers serving this namespace (the emitter is not one). */
  serverCount() {
    return new Promise((resolve) => this._send((link) => resolve(link.count(this._nsp))));
  }

  /** Counters of the emitter's connection to the hub. */
  stats() {
    return this._link.stats();
  }

  /** True once close() was called (on any namespace of this emitter). */
  get closed() {
    return this._shared.closed;
  }

  /**
   * Ends the connection to the hub (every namespace of this emitter). The
   * promise resolves once everything emitted before has been handed to the
   * hub: a short-lived process awaits it before exiting.
   */
  close() {
    if (this._shared.closed) return Promise.resolve();
    this._shared.closed = true;
    return this._shared.link.releaseEmitter();
  }
}

class BroadcastOperator {
  constructor(emitter, rooms, except, flags) {
    this._emitter = emitter;
    this._rooms = rooms;
    this._except = except;
    this._flags = flags;
  }

  _with(change) {
    const next = new BroadcastOperator(this._emitter, new Set(this._rooms), new Set(this._except), { ...this._flags });
    change(next);
    return next;
  }

  to(room) {
    return this._with((o) => [].concat(room).forEach((r) => o._rooms.add(r)));
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    return this._with((o) => [].concat(room).forEach((r) => o._except.add(r)));
  }

  get volatile() {
    return this._with((o) => (o._flags.volatile = true));
  }

  compress(compress) {
    return this._with((o) => (o._flags.compress = compress));
  }

  timeout(ms) {
    if (typeof ms !== "number" || !(ms >= 0)) throw new TypeError(`socket.io-cluster-rs emitter: timeout must be a number of milliseconds, got ${ms}`);
    return this._with((o) => (o._flags.timeout = ms));
  }

  _target() {
    return { rooms: this._rooms, except: this._except, flags: this._flags };
  }


  /** Sends the event to every matching client of every worker. Returns true. */
  emit(ev, ...args) {
    const { timeout, ...flags } = this._flags;
    return emitBroadcast(this._emitter, this._target(), flags, ev, args);
  }

  /**
   * Sends the event and resolves with every client's acknowledgement, or
   * rejects when they have not all arrived within `timeout(ms)` (default:
   * `requestsTimeout`), like `io.timeout(ms).emitWithAck()`.
   */
  emitWithAck(ev, ...args) {
    const emitter = this._emitter;
    const encoded = encodeEvent(emitter, ev, args, true);
    const opts = this._target();
    const timeout = this._flags.timeout === undefined ? emitter._opts.requestsTimeout : this._flags.timeout;
    return new Promise((resolve, reject) => {
      const responses = [];
      let servers = null; // workers that will answer, once the hub says
      let answered = 0; // workers whose client count and acks are all in
      let clients = 0;
      let settled = false;
      let forget = () => {};
      const settle = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        forget();
        if (err) reject(err);
        else resolve(responses);
      };
      const check = () => {
        if (servers !== null && answered === servers && responses.length === clients) settle(null);
      };
      const tally = requests.ackTally(
        (count) => {
          answered++;
          clients += count;
          check();
        },
        (arg) => {
          responses.push(arg);
          check();
        },
        // ackTally counts the asking server too; the emitter is none.
        (n) => {
          servers = n - 1;
          check();
        },
      );
      const handler = {
        ...tally,
        down: (reason) => settle(new Error(`socket.io-cluster-rs emitter: emitWithAck failed: ${reason}`)),
      };
      const timer = setTimeout(() => settle(new Error("operation has timed out")), timeout);
      const parts = [Buffer.from(JSON.stringify([encodeOptions(opts), kindsOf(encoded)])), ...toBuffers(encoded)];
      emitter._send((link) => {
        try {
          if (!settled) forget = link.request(emitter._nsp, Kind.BROADCAST, timeout, true, targetRooms(opts), parts, handler);
        } catch (err) {
          settle(err);
        }
      });
    });
  }

  socketsJoin(rooms) {
    const opts = this._target();
    const parts = [pack({ opts: encodeOptions(opts), rooms: [].concat(rooms) })];
    this._emitter._send((link) => link.joinRooms(this._emitter._nsp, targetRooms(opts), parts));
    return true;
  }

  socketsLeave(rooms) {
    return this._publish(Kind.SOCKETS_LEAVE, { rooms: [].concat(rooms) });
  }

  disconnectSockets(close = false) {
    return this._publish(Kind.DISCONNECT_SOCKETS, { close: !!close });
  }

  _publish(kind, data) {
    const opts = this._target();
    const parts = [pack({ opts: encodeOptions(opts), ...data })];
    this._emitter._send((link) => link.publish(this._emitter._nsp, kind, false, targetRooms(opts), parts));
    return true;
  }

  /** The matching sockets of every worker, as plain descriptions: `{ id, handshake, rooms, data }`. */
  fetchSockets() {
    const emitter = this._emitter;
    const opts = this._target();
    const timeout = this._flags.timeout === undefined ? emitter._opts.requestsTimeout : this._flags.timeout;
    return new Promise((resolve, reject) => {
      const tally = requests.socketsTally([], emitter._opts.partialResults, resolve, reject);
      emitter._request(Kind.FETCH_SOCKETS, timeout, targetRooms(opts), [pack(encodeOptions(opts))], tally, reject);
    });
  }
}

// The targets of `emitter.emit()`: everyone, no flags (never modified).
const EVERYONE = Object.freeze({ rooms: new Set(), except: new Set(), flags: Object.freeze({}) });

/** The parser's output for event `ev` with `args`. */
function encodeEvent(emitter, ev, args, withAck) {
  checkEvent(ev);
  if (!withAck) checkNoAck(args);
  const packet = { type: EVENT, data: [ev, ...args], nsp: emitter._nsp };
  try {
    return emitter._encoder.encode(packet);
  } catch (err) {
    throw new TypeError(`socket.io-cluster-rs emitter: cannot encode the arguments of "${ev}": ${err.message}`);
  }
}

/** Sends a broadcast of `ev` to `opts`' targets; returns true. */
function emitBroadcast(emitter, opts, flags, ev, args, link = emitter._link) {
  if (link.handshaking) {
    // Whether the workers recover this namespace is known after the
    // handshake; the broadcast goes then, in order (even if close() was
    // called meanwhile: it waits for this), and its errors are logged.
    encodeEvent(emitter, ev, args, false); // bad input still throws here
    link.afterHandshake(() => emitBroadcast(emitter, opts, flags, ev, args, link));
    return true;
  }
  // Where the workers run with connection state recovery, the broadcast is
  // logged by the hub with an offset, as a worker's would be.
  if (!flags.volatile && link.recovers(emitter._nsp)) return emitRecorded(emitter, opts, flags, ev, args, link);
  const encoded = encodeEvent(emitter, ev, args, false);
  // A single text part travels as its WebSocket frame, as a worker's
  // broadcast does; the common targets then reuse a cached meta part.
  const packetOpts = encoded.length === 1 && typeof encoded[0] === "string" ? { wsPreEncodedFrame: framesOf(encoded) } : {};
  const parts = broadcastParts(opts, flags, encoded, packetOpts);
  const header = flags.volatile || link.joinsPending > 0 ? null : emitter._headers.get(opts);
  if (header === null) link.publish(emitter._nsp, Kind.BROADCAST, !!flags.volatile, targetRooms(opts), parts);
  else link.publishWith(header, parts);
  return true;
}

/** A broadcast the hub logs for connection state recovery: its last argument is its offset. */
function emitRecorded(emitter, opts, flags, ev, args, link) {
  const shared = emitter._shared;
  shared.offsetPrefix ??= randomBytes(8).toString("hex");
  shared.offsetSeq = (shared.offsetSeq || 0) + 1;
  const offset = shared.offsetPrefix + shared.offsetSeq.toString(36);
  checkNoAck(args);
  const encoded = encodeEvent(emitter, ev, [...args, offset], false);
  const parts = broadcastParts(opts, flags, encoded, {});
  link.record(emitter._nsp, targetRooms(opts), offset, parts);
  return true;
}

function checkNoAck(args) {
  if (typeof args[args.length - 1] === "function") {
    throw new TypeError("socket.io-cluster-rs emitter: emit() takes no acknowledgement callback; use timeout(ms).emitWithAck()");
  }
}

function checkEvent(ev) {
  if (typeof ev !== "string") throw new TypeError(`socket.io-cluster-rs emitter: an event name must be a string, got ${typeof ev}`);
  if (RESERVED.has(ev)) throw new Error(`socket.io-cluster-rs emitter: "${ev}" is a reserved event name`);
}

/** Emitter options: createAdapter()'s, plus `parser` (the workers' Socket.IO `parser`). */
function emitterOptions(opts) {
  const { parser, hubPath, primaryPid, ...rest } = opts || {};
  if (parser !== undefined && (parser === null || typeof parser.Encoder !== "function")) {
    throw new TypeError("socket.io-cluster-rs emitter: option parser must be a Socket.IO parser (an object with an Encoder class)");
  }
  return { resolved: resolveOptions(rest), encoder: new (parser || defaultParser()).Encoder() };
}

/** The emitter of the hub at `address` (this process's own hub for setupPrimary().emitter). */
function emitterFor(address, opts) {
  const { resolved, encoder } = emitterOptions(opts);
  const link = acquireLink(address, resolved);
  link.retainEmitter();
  return new Emitter(link, nspName((opts && opts.nsp) || "/"), resolved, encoder);
}

/**
 * An emitter in a process outside the cluster. The hub is found by
 * `primaryPid` (the primary's pid; its address is derived as the workers
 * derive it) or `hubPath` (the address `setupPrimary().path` gives).
 */
function createEmitter(opts) {
  if (opts === undefined || opts === null || typeof opts !== "object") {
    throw new TypeError("socket.io-cluster-rs: createEmitter() needs an options object with primaryPid or hubPath");
  }
  const { primaryPid, hubPath } = opts;
  let address;
  let named;
  if (hubPath !== undefined) {
    if (typeof hubPath !== "string" || hubPath === "") throw new TypeError("socket.io-cluster-rs: createEmitter() option hubPath must be a non-empty string");
    address = hubPath;
    named = `hubPath ${JSON.stringify(hubPath)}`;
  } else if (primaryPid !== undefined) {
    if (!Number.isInteger(primaryPid) || primaryPid <= 0) throw new TypeError("socket.io-cluster-rs: createEmitter() option primaryPid must be a process id");
    address = binding.hubAddress(os.tmpdir(), primaryPid, false);
    named = `primaryPid ${primaryPid}`;
  } else {
    throw new TypeError("socket.io-cluster-rs: createEmitter() needs primaryPid (the cluster primary's pid) or hubPath (setupPrimary().path)");
  }
  const state = address === null ? "absent" : binding.probeHub(address);
  if (state !== "up") {
    const e = new Error(
      `socket.io-cluster-rs: createEmitter(): no hub reachable for ${named}${state === "absent" ? "" : ` (${state})`}; ` +
        "it must be the primary of a running cluster that called setupPrimary(), run by the same user",
    );
    e.code = "ERR_SOCKET_IO_CLUSTER_NO_HUB";
    throw e;
  }
  return emitterFor(address, opts);
}

module.exports = { Emitter, createEmitter, emitterFor };
