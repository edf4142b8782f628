"use strict";
// Connection state recovery across workers (docs/recovery.md), the worker's
// side. The hub (src/recovery.rs) logs every recoverable broadcast of a
// namespace in one order, sends it to the other workers and echoes its offset
// to the emitting one, which delivers it to its own sockets then: every
// worker, and every replay, agrees on that order. Here: offsets for
// recoverable broadcasts, the state of connected sockets and the sessions
// handed to the hub, and restoring one from the hub on any worker.

const debug = require("./debug").logger("recovery");
const { packLenient, unpack, splitParts } = require("./codec");
const { readMeta } = require("./broadcast-wire");
const { encodedOf } = require("./frames");
const internals = require("./socketio-internals");

/** What the hub answers to a restore (`recovery::Refusal` in Rust). */
const Outcome = Object.freeze({ RESTORED: 0, NO_SESSION: 1, OFFSET_GONE: 2, TOO_LARGE: 3 });
const REFUSALS = {
  [Outcome.NO_SESSION]: "no such session (never saved, expired, or restored already)",
  [Outcome.OFFSET_GONE]: "its offset is no longer in the hub's log",
  [Outcome.TOO_LARGE]: "what it missed does not fit in a frame (maxFrameSize)",
};

/** The namespace's `connectionStateRecovery` options (Socket.IO ≥ 4.6), or null. */
function recoveryOf(nsp) {
  const opts = nsp && nsp.server && nsp.server.opts;
  return (opts && opts.connectionStateRecovery) || null;
}

/**
 * True for a packet Socket.IO's own store keeps: an event without an
 * acknowledgement, not volatile. Local broadcasts stay local (not logged).
 */
function isRecoverable(packet, flags) {
  return packet.type === 2 && packet.id === undefined && !flags.volatile && !flags.local;
}

/**
 * One adapter's part of recovery: offsets, and the order of its own
 * broadcasts, which reach its clients only through the hub.
 */
class AdapterRecovery {
  constructor(adapter, opts) {
    this.adapter = adapter;
    this.maxDisconnectionDuration = opts.maxDisconnectionDuration;
    // Offsets are unique across workers and restarts: the adapter's random
    // uid, then a counter.
    this.prefix = adapter.uid;
    this.seq = 0;
    // Own broadcasts sent to the hub and not echoed yet (each with what
    // delivers it to this worker's sockets), and who waits for them.
    this.own = [];
    this.waiters = [];
    // The hub holds the state of every connected socket, so that a socket
    // of a worker that dies can be restored elsewhere: synced when it
    // connects and when its rooms change (coalesced per tick).
    this.pids = new Map(); // socket id → private session id, once synced
    this.dirty = new Set();
    this.persisted = new Set(); // pids saved by persist(), about to be cleaned up
    this.flushScheduled = false;
    // While a restored socket does not exist yet (between the hub's answer
    // and Socket.IO creating it), what arrives for this namespace waits, in
    // order, so that the socket gets what was logged after its replay.
    this.paused = 0;
    this.queue = [];
    const touch = (room, id) => this.touch(id);
    adapter.on("join-room", touch);
    adapter.on("leave-room", touch);
    adapter._link.enableRecovery(adapter.nsp.name, this.maxDisconnectionDuration);
  }

  touch(id) {
    this.dirty.add(id);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.sync());
  }

  /** Sends the hub the state of the sockets whose rooms changed. */
  sync() {
    this.flushScheduled = false;
    const { adapter } = this;
    for (const id of this.dirty) {
      const socket = adapter.nsp.sockets.get(id);
      if (!socket || !socket.pid) continue;
      this.pids.set(id, socket.pid);
      const state = packLenient({ sid: id, rooms: [...socket.rooms], data: socket.data });
      adapter._link.syncSession(adapter.nsp.name, socket.pid, [state]);
    }
    this.dirty.clear();
  }

  /** Socket `id` is cleaned up (every disconnect): unless persisted, its session ends. */
  gone(id) {
    const pid = this.pids.get(id);
    if (pid === undefined) return;
    this.pids.delete(id);
    if (this.persisted.delete(pid)) return;
    this.adapter._link.endSession(this.adapter.nsp.name, pid);
  }

  nextOffset() {
    this.seq++;
    return this.prefix + this.seq.toString(36);
  }

  /** Broadcast `offset` went to the hub; `deliver` writes it to this worker's sockets. */
  sent(offset, deliver) {
    this.own.push({ offset, deliver });
  }

  /**
   * The hub logged broadcast `offset` and sent it on: now this worker's own
   * sockets get it, in the log's order. Echoes come back in the order the
   * broadcasts were sent.
   */
  echoed(offset) {
    while (this.own.length > 0) {
      const { offset: o, deliver } = this.own.shift();
      deliver();
      if (o === offset) break;
    }
    if (this.own.length === 0) this.release();
  }

  /** No echo will come (the hub connection is gone): deliver, unlogged. */
  flush() {
    const own = this.own;
    this.own = [];
    for (const { deliver } of own) deliver();
    this.release();
  }

  release() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once this adapter's broadcasts sent so far have come back and
   * reached its clients, so a room operation applied locally keeps its
   * place behind them. Bounded by `requestsTimeout` (a lost hub never
   * sends them back).
   */
  settled(timeoutMs) {
    if (this.own.length === 0) return null;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.flush();
        this.adapter.flushRemote();
      }, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Socket.IO calls this on a recoverable disconnect: the hub keeps the session. */
  persist(session) {
    const { sid, pid, rooms, data } = session;
    // gone(sid) follows at once: it must not end what is saved here.
    if (this.pids.get(sid) === pid) this.persisted.add(pid);
    this.adapter._link.saveSession(this.adapter.nsp.name, pid, [packLenient({ sid, rooms, data })]);
  }

  /**
   * Socket.IO calls this when a client comes back with `pid` and `offset`:
   * the session and every packet it missed, in the hub's order, or null
   * (the client then gets a new session).
   */
  async restore(pid, offset) {
    const adapter = this.adapter;
    const onAnswer = (outcome) => {
      if (outcome === Outcome.RESTORED) this.paused++;
    };
    const { outcome, payload } = await adapter._link.restore(adapter.nsp.name, pid, offset, adapter._opts.requestsTimeout, onAnswer);
    if (outcome !== Outcome.RESTORED) {
      debug("session %s not restored: %s", pid, REFUSALS[outcome] || `outcome ${outcome}`);
      return null;
    }
    // Socket.IO creates the socket (joining its rooms, which announces them
    // to the hub) in the continuation of this promise; after that, what
    // waited is delivered and the hub goes back to routing by rooms.
    setImmediate(() => this.resume());
    return this.session(pid, payload);
  }

  /** Holds `fn` (a message of this namespace) while a restore is in progress; false when none is. */
  hold(fn) {
    if (this.paused === 0) return false;
    this.queue.push(fn);
    return true;
  }

  resume() {
    this.paused--;
    this.adapter._link.restoreDone(this.adapter.nsp.name);
    if (this.paused > 0) return;
    const queue = this.queue;
    this.queue = [];
    for (const fn of queue) {
      try {
        fn();
      } catch (err) {
        debug("error while handling a message held during a restore: %s", err && err.stack);
      }
    }
    this.adapter.flushRemote();
  }

  /** The session and missed packets of a restore answer, for Socket.IO. */
  session(pid, payload) {
    const adapter = this.adapter;
    // Each part is a payload as it was sent: the session's, then the broadcasts'.
    const [sessionPayload, ...entries] = splitParts(payload);
    const session = unpack(splitParts(sessionPayload)[0]);
    const rooms = session.rooms;
    const missedPackets = [];
    for (const entry of entries) {
      const [meta, ...frames] = splitParts(entry);
      const { opts, kinds } = readMeta(meta);
      if (!reaches(rooms, opts)) continue;
      const packet = internals.decodePacket(adapter.nsp.server, encodedOf(frames, kinds));
      missedPackets.push(packet.data);
    }
    debug("session %s restored with %d missed packet(s)", pid, missedPackets.length);
    return { sid: session.sid, pid, rooms, data: session.data, missedPackets };
  }
}

/** Whether a broadcast to `opts` reached a socket in `rooms` (as Socket.IO's own store decides). */
function reaches(rooms, opts) {
  const included = opts.rooms.size === 0 || rooms.some((r) => opts.rooms.has(r));
  const excluded = opts.except && rooms.some((r) => opts.except.has(r));
  return included && !excluded;
}

module.exports = { AdapterRecovery, recoveryOf, isRecoverable, Outcome };
