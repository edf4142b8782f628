"use strict";
// The worker's connection to the hub: one per process and hub, shared by every
// namespace adapter. It sends what the adapters publish, reads what the hub
// sends (lib/batch-decoder.js) and hands it to the adapters or to the pending
// requests (lib/pending-requests.js), and reconnects when the hub goes away.

const net = require("node:net");
const debug = require("./debug").logger("link");
const binding = require("./native");
const { isFence } = require("./fence");
const warnings = require("./warnings");
const { decodeBatch } = require("./batch-decoder");
const { PendingRequests } = require("./pending-requests");
const { roomKey, nspKey } = require("./keys");
const { ErrorCode } = require("./generated/error-codes");
const { Kind } = require("./stock-protocol");

const DRAIN_BATCH = 256;
// Bytes read from the hub per syscall at most: what the hub writes at once.
const READ_BUFFER = 256 * 1024;
// Reconnection backoff: 50 ms, doubling, at most 2 s between attempts.
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2_000;
// How long closing an emitter waits for a handshake in progress (the hub's own limit is 5 s).
const HANDSHAKE_WAIT_MS = 5_000;

const links = new Map(); // hub address → HubLink

class HubLink {
  constructor(path, opts) {
    this.path = path;
    this.opts = opts;
    this.node = null;
    this.downReason = null;
    this.adapters = new Map(); // nsp key (see nspKey()) → Set<adapter>
    // Emitters using this link (lib/emitter.js): they serve no namespace.
    this.emitters = 0;
    // socketsJoin() requests not yet applied by every receiver, see joinRooms().
    this.joinsPending = 0;
    // Namespaces with connection state recovery → maxDisconnectionDuration
    // (announced again on every new connection).
    this.recoveries = new Map();
    // Namespace keys the hub says run with recovery somewhere (for emitters).
    this.recoveryOn = new Set();
    // Calls waiting for the first handshake (see afterHandshake()).
    this.upQueue = [];
    this.upTimer = null;
    this.pending = new PendingRequests();
    this.counters = {
      messagesIn: 0,
      bytesIn: 0,
      messagesOut: 0,
      bytesOut: 0,
      droppedVolatile: 0,
      droppedOverflow: 0,
      droppedTooLarge: 0,
      droppedQueueFull: 0,
    };
    // The connection of the moment (a new one after each loss, see onDown()).
    this.native = null;
    this.closed = false;
    this.reconnects = 0;
    this.attempts = 0;
    this.retryTimer = null;
    // The socket this thread reads the hub's frames from, once the link is up.
    this.reader = null;
    // The adapters (of one namespace) that may hold remote broadcasts, see
    // NodeClusterAdapter#flushRemote().
    this.heldBy = null;
    this.flushScheduled = false;
    this.flushNow = () => {
      this.flushScheduled = false;
      this.native.flush();
    };
    // A JS timer on purpose: it proves the event loop is alive, not just the
    // link thread. Unref'd, so it never keeps a worker running.
    this.heartbeat = setInterval(() => {
      this.native.heartbeat();
      this.kick();
    }, opts.heartbeatInterval);
    this.heartbeat.unref();
    // The primary's fences (lib/fence.js): by the time one is emitted, the
    // handlers of the messages sent before it have run, and what they sent
    // to the hub is ahead of the acknowledgement in this link's buffer.
    this.onInternalMessage = (msg) => {
      if (!isFence(msg)) return;
      this.native.fenceAck(msg.fence);
      this.kick();
    };
    process.on("internalMessage", this.onInternalMessage);
    this.connect();
  }

  /**
   * Opens a connection and announces this worker's namespaces and rooms on
   * it (none yet on the first one): what it sends until the handshake is
   * done waits in the addon.
   */
  connect() {
    const { heartbeatTimeout, maxFrameSize, queueSoftLimit, queueHardLimit } = this.opts;
    const limits = { heartbeatTimeout, maxFrameSize, queueSoftLimit, queueHardLimit };
    const native = new binding.Link(this.path, limits, () => this.drain(native));
    this.native = native;
    for (const [nsp, ms] of this.recoveries) native.recovery(nsp, ms);
    for (const [nsp, set] of this.adapters) {
      native.register(nsp);
      for (const adapter of set) for (const room of adapter.rooms.keys()) native.roomAdd(nsp, roomKey(room));
    }
    this.kick();
  }

  /**
   * Frames sent during a tick are collected by the addon and written with
   * one syscall at the end of the tick.
   */
  kick() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }

  get up() {
    return this.downReason === null;
  }

  attach(adapter) {
    const nsp = nspKey(adapter.nsp.name);
    let set = this.adapters.get(nsp);
    if (!set) {
      set = new Set();
      this.adapters.set(nsp, set);
      this.native.register(nsp);
      this.kick();
    }
    set.add(adapter);
  }

  detach(adapter) {
    const nsp = nspKey(adapter.nsp.name);
    const set = this.adapters.get(nsp);
    if (!set || !set.delete(adapter)) return;
    if (set.size === 0) {
      this.adapters.delete(nsp);
      this.native.unregister(nsp);
      this.kick();
    }
    if (this.adapters.size === 0 && this.emitters === 0) this.close();
  }

  retainEmitter() {
    this.emitters++;
  }

  /** Resolves once the link is closed, or at once when other users keep it open. */
  releaseEmitter() {
    if (this.emitters === 0) return Promise.resolve();
    this.emitters--;
    if (this.adapters.size === 0 && this.emitters === 0) return this.closeWhenSent();
    return Promise.resolve();
  }

  /**
   * Closes once what was sent so far has been handed to the hub. Before the
   * handshake, frames wait in the addon: closing then would lose them (an
   * emitter in a short-lived process emits and closes at once), so this
   * waits for the connection to come up, or fail, keeping the process alive
   * meanwhile (bounded by the hub's handshake timeout).
   */
  closeWhenSent() {
    const close = () => {
      if (!this.closed) this.close();
    };
    if (!this.handshaking) {
      close();
      return Promise.resolve();
    }
    // Queued behind what waits for the handshake, so that goes out first.
    return new Promise((resolve) => this.afterHandshake(() => (close(), resolve())));
  }

  close() {
    if (links.get(this.path) === this) links.delete(this.path);
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    process.off("internalMessage", this.onInternalMessage);
    this.stopReading();
    this.native.close();
    this.pending.failAll("the adapter was closed");
  }

  /** Throws when the hub is gone, so cluster operations fail fast. */
  assertUp() {
    if (!this.up) {
      throw new Error(`socket.io-cluster-rs: the hub is unreachable (${this.downReason})`);
    }
  }

  /** `rooms`: JSON keys of the target rooms (see roomKey), empty for all. */
  publish(nsp, kind, volatile, rooms, parts) {
    this.assertUp();
    if (this.joinsPending > 0) rooms = [];
    this.countOut(parts);
    this.unlessFull(() => sizeChecked(() => this.native.publish(nspKey(nsp), kind, volatile, rooms, parts)));
    this.kick();
  }

  /** publish() with a header from publishHeader(), for targets published to over and over. */
  publishWith(header, parts) {
    this.assertUp();
    this.countOut(parts);
    // The hot path of `io.emit()`: no closures unless the addon refuses.
    try {
      this.native.publishWith(header, parts);
    } catch (err) {
      this.unlessFull(() => sizeChecked(() => {
        throw err;
      }));
    }
    this.kick();
  }

  /**
   * Runs `send`; a message refused because the queue toward the hub is full
   * (the hub is not reading) is counted and warned about, not thrown: the
   * broadcast still reached this worker's own clients.
   */
  unlessFull(send) {
    try {
      send();
    } catch (err) {
      if (err.code !== ErrorCode.QUEUE_FULL) throw err;
      this.counters.droppedQueueFull++;
      warnings.warn(
        `socket.io-cluster-rs: this worker (pid ${process.pid}) drops messages for other workers: ${err.message} (adapter.stats().droppedQueueFull)`,
        "queue-full",
      );
    }
  }

  roomAdd(nsp, room) {
    this.native.roomAdd(nspKey(nsp), roomKey(room));
    // Written now, not at the end of the tick: a socket joins a room before
    // socket.io tells its client anything (the CONNECT packet, an emit after
    // join()), so the hub has the new member before any other worker can
    // hear of it and target the room.
    this.native.flush();
  }

  roomDel(nsp, room) {
    this.native.roomDel(nspKey(nsp), roomKey(room));
    this.kick();
  }

  respond(id, last, parts) {
    if (!this.up) return;
    this.countOut(parts);
    this.unlessFull(() => {
      try {
        this.native.respond(id, last, parts);
      } catch (err) {
        if (err.code === ErrorCode.QUEUE_FULL) throw err;
        // Too large: the requester then counts this node as answered with nothing.
        debug("cannot answer request %d: %s", id, err.message);
        this.native.respond(id, last, []);
      }
    });
    this.kick();
  }

  /** The largest answer part respond() can send in one frame. */
  maxPayload() {
    return this.native.maxPayload();
  }

  /**
   * Sends a request; `handler` gets accepted(n), reply(from, payload, last),
   * departed(node), done(), timedOut(missing) and down(reason). Returns a
   * function that forgets the request.
   */
  request(nsp, kind, timeoutMs, keep, rooms, parts, handler) {
    this.assertUp();
    if (this.joinsPending > 0 && kind !== Kind.SOCKETS_JOIN) rooms = [];
    const { req, forget } = this.pending.open(timeoutMs, handler);
    this.countOut(parts);
    try {
      sizeChecked(() => this.native.request({ req, nsp: nspKey(nsp), kind, timeoutMs, keep, rooms }, parts));
      this.kick();
    } catch (err) {
      forget();
      throw err;
    }
    return forget;
  }

  /**
   * Sends a socketsJoin() to the other workers as a request that each
   * answers once it applied it. A join can create rooms at its receivers,
   * which they announce to the hub only as they apply it; until then the
   * hub's room routing could leave them out of what this process sends next
   * (`io.socketsJoin("a"); io.to("a").emit()`). So until every receiver has
   * answered (or left, or the request timed out), this process routes its
   * room-targeted messages to every worker, which filter by room themselves.
   */
  joinRooms(nsp, rooms, parts) {
    const settle = () => this.joinsPending--;
    this.joinsPending++;
    try {
      this.request(nsp, Kind.SOCKETS_JOIN, this.opts.requestsTimeout, false, rooms, parts, { done: settle, timedOut: settle, down: settle });
    } catch (err) {
      this.joinsPending--;
      throw err;
    }
  }

  // ---- connection state recovery (lib/recovery.js) --------------------------

  /** `nsp` runs with recovery here: the hub logs its broadcasts and keeps its sessions. */
  enableRecovery(nsp, maxDisconnectionDuration) {
    const key = nspKey(nsp);
    const ms = Math.min(Math.max(0, Math.ceil(maxDisconnectionDuration)), 0xffff_ffff);
    this.recoveries.set(key, Math.max(ms, this.recoveries.get(key) || 0));
    this.native.recovery(key, this.recoveries.get(key));
    this.kick();
  }

  /** A recoverable broadcast whose packet ends with `offset`; the hub delivers it here too. */
  record(nsp, rooms, offset, parts) {
    this.assertUp();
    if (this.joinsPending > 0) rooms = [];
    this.countOut(parts);
    this.unlessFull(() => sizeChecked(() => this.native.record(nspKey(nsp), rooms, offset, parts)));
    this.kick();
  }

  /** Hands the hub a disconnected socket's session (dropped, not thrown, without a hub). */
  saveSession(nsp, pid, parts) {
    this.sendSession("save", (key) => this.native.sessionSave(key, pid, parts), nsp, pid);
  }

  /** The socket of a restore exists now, in its rooms. */
  restoreDone(nsp) {
    if (!this.up) return;
    this.native.restoreDone(nspKey(nsp));
    this.kick();
  }

  /** The state of a connected socket, kept by the hub as a session if this worker dies. */
  syncSession(nsp, pid, parts) {
    this.sendSession("sync", (key) => this.native.sessionSync(key, pid, parts), nsp, pid);
  }

  /** Sends a session frame made by `send(nspKey)`; without a hub, or when it cannot go, it is dropped, not thrown. */
  sendSession(verb, send, nsp, pid) {
    if (!this.up) return;
    try {
      send(nspKey(nsp));
    } catch (err) {
      debug("cannot %s session %s: %s", verb, pid, err.message);
    }
    this.kick();
  }

  /** A connected socket is gone for good. */
  endSession(nsp, pid) {
    if (!this.up) return;
    this.native.sessionEnd(nspKey(nsp), pid);
    this.kick();
  }

  /**
   * Asks the hub for session `pid` of `nsp` and the broadcasts logged after
   * `offset`; resolves with `{ outcome, payload }` (outcome 0: restored).
   */
  restore(nsp, pid, offset, timeoutMs, onAnswer) {
    this.assertUp();
    return new Promise((resolve, reject) => {
      const { req, forget } = this.pending.open(timeoutMs, {
        restored: (outcome, payload) => {
          // Synchronously, before the records behind the answer are read.
          onAnswer(outcome);
          resolve({ outcome, payload });
        },
        down: (reason) => reject(new Error(`socket.io-cluster-rs: cannot restore the session: ${reason}`)),
      });
      try {
        this.native.restore(req, nspKey(nsp), pid, offset);
        this.kick();
      } catch (err) {
        forget();
        reject(err);
      }
    });
  }

  /** Number of live workers serving `nsp`, this one included. */
  count(nsp) {
    if (!this.up) return Promise.resolve(1);
    return new Promise((resolve) => {
      // Its backstop is also what keeps the process alive while the answer is on its way.
      const { req } = this.pending.open(0, { count: resolve, down: () => resolve(1) });
      this.native.countQuery(req, nspKey(nsp));
      this.kick();
    });
  }

  countOut(parts) {
    this.counters.messagesOut++;
    for (const p of parts) this.counters.bytesOut += p.length;
  }

  /** Counters of this worker's connection, for adapter.stats(). */
  stats() {
    return {
      transport: "native",
      node: this.node,
      connected: !this.closed && this.up && this.node !== null,
      error: this.closed ? "closed" : this.downReason,
      reconnects: this.reconnects,
      queuedBytes: this.native.queuedBytes(),
      pendingRequests: this.pending.size,
      namespaces: [...this.adapters.keys()],
      ...this.counters,
    };
  }

  /** Handles the events the link thread of `native` queued (the connection going up or down). */
  drain(native) {
    if (native !== this.native) return;
    const buf = native.drain(DRAIN_BATCH);
    if (buf) decodeBatch(buf, this);
  }

  /**
   * Reads the hub's frames on this thread from now on: one wake-up per
   * message instead of two (the link thread's, then this one's). Unref'd, so
   * the connection never keeps a worker running.
   */
  startReading() {
    const fd = this.native.takeReader();
    if (fd === null || fd === undefined) return;
    // `onread`: libuv reads into one reused buffer and calls us directly,
    // without the stream machinery ('data' events, a new buffer per read).
    // feed() copies what it needs, so the buffer is free again on return.
    const readBuf = Buffer.allocUnsafe(READ_BUFFER);
    const reader = new net.Socket({
      fd,
      readable: true,
      writable: false,
      onread: {
        buffer: readBuf,
        callback: (n) => {
          if (this.reader === reader) this.feed(readBuf.subarray(0, n));
        },
      },
    });
    reader.unref();
    reader.on("end", () => this.reader === reader && this.onDown("the hub closed the connection"));
    reader.on("error", (err) => this.reader === reader && this.onDown(`lost the hub connection: ${err.message}`));
    this.reader = reader;
    // Frames that arrived right behind the handshake.
    this.feed(Buffer.alloc(0));
  }

  stopReading() {
    if (this.reader === null) return;
    const reader = this.reader;
    this.reader = null;
    reader.destroy();
  }

  feed(chunk) {
    let buf;
    try {
      buf = this.native.feed(chunk);
    } catch (err) {
      return this.onDown(err.message);
    }
    if (buf) decodeBatch(buf, this);
  }

  // ---- what the hub sends (called by decodeBatch()) ------------------------

  /** Delivers the remote broadcasts an adapter holds (only one namespace can hold any). */
  flushHeld() {
    const set = this.heldBy;
    if (!set) return;
    this.heldBy = null;
    for (const a of set) {
      try {
        a.flushRemote();
      } catch (err) {
        debug("error while delivering broadcasts: %s", err && err.stack);
      }
    }
  }

  onMessage(from, kind, nsp, payload) {
    this.countIn(payload);
    const set = this.adapters.get(nsp);
    if (!set) return;
    // Namespaces share the client connection: another namespace's held
    // broadcasts go out first, so a client sees them in emit order.
    if (this.heldBy !== set) this.flushHeld();
    this.heldBy = set;
    for (const a of set) a.onClusterMessage(kind, payload, from);
  }

  onIncoming(id, from, kind, nsp, payload) {
    this.countIn(payload);
    const set = this.adapters.get(nsp);
    const adapter = set && set.values().next().value;
    if (adapter) adapter.onClusterRequest(id, kind, payload, from);
    // The namespace closed in between: say we are done so nobody waits.
    else this.respond(id, true, []);
  }

  onReply(req, from, last, done, payload) {
    this.countIn(payload);
    this.pending.call(req, "reply", from, payload, last === 1);
    // The reply that completes a request carries the completion.
    if (done === 1) this.pending.call(req, "done");
  }

  onAccepted(req, expected) {
    this.pending.call(req, "accepted", expected);
  }

  onDeparted(req, node) {
    this.pending.call(req, "departed", node);
  }

  onDone(req) {
    this.pending.call(req, "done");
  }

  onTimedOut(req, missing, pids) {
    this.pending.call(req, "timedOut", missing, pids);
  }

  onCount(req, count) {
    this.pending.call(req, "count", count);
  }

  /** The hub logged and sent on this worker's recoverable broadcast `offset`. */
  onEcho(nsp, offset) {
    const set = this.adapters.get(nsp);
    if (!set) return;
    // Held with the remote broadcasts around it, as onMessage() does.
    if (this.heldBy !== set) this.flushHeld();
    this.heldBy = set;
    for (const a of set) a.onEcho(offset);
  }

  onRecoveryOn(nsp) {
    this.recoveryOn.add(nsp);
  }

  /**
   * True before the first handshake: what depends on the hub's state (which
   * namespaces recover) waits for it through afterHandshake().
   */
  get handshaking() {
    return this.node === null && this.downReason === null && !this.closed;
  }

  /**
   * Runs `fn` once the first handshake is done (or failed: `fn` then meets
   * the error). Meanwhile a ref'd timer keeps the process alive, bounded by
   * the hub's handshake timeout.
   */
  afterHandshake(fn) {
    this.upQueue.push(fn);
    this.upTimer ??= setTimeout(() => this.runUpQueue(), HANDSHAKE_WAIT_MS);
  }

  runUpQueue() {
    clearTimeout(this.upTimer);
    this.upTimer = null;
    const queued = this.upQueue;
    this.upQueue = [];
    for (const fn of queued) {
      try {
        fn();
      } catch (err) {
        debug("error in a call made before the connection was up: %s", err.message);
      }
    }
  }

  /** True when the hub said `nsp` runs with connection state recovery. */
  recovers(nsp) {
    return this.recoveryOn.has(nspKey(nsp));
  }

  onRestored(req, outcome, payload) {
    this.countIn(payload);
    this.pending.call(req, "restored", outcome, payload);
  }

  onUp(node) {
    this.node = node;
    if (this.downReason !== null) {
      this.reconnects++;
      warnings.warn(
        `socket.io-cluster-rs: this worker (pid ${process.pid}) is connected to the hub again, after ${this.attempts} attempt(s)`,
        "hub-back",
      );
    }
    this.downReason = null;
    this.attempts = 0;
    debug("connected to the hub at %s as node %d", this.path, this.node);
    this.startReading();
    // The frames right behind Welcome (which namespaces recover) are read now.
    this.runUpQueue();
  }

  onDropped(volatile, overflow) {
    this.counters.droppedVolatile += volatile;
    this.counters.droppedOverflow += overflow;
    // Logged when it happens, once per episode: the hub reports drops
    // when this worker catches up after falling behind.
    warnings.warn(
      `socket.io-cluster-rs: this worker (pid ${process.pid}) fell behind; the hub dropped ${volatile} volatile and ${overflow} other messages for it`,
      "dropped",
    );
  }

  onTooLarge(count, limit) {
    this.counters.droppedTooLarge += count;
    warnings.warn(
      `socket.io-cluster-rs: ${count} message(s) sent by this worker (pid ${process.pid}) before its connection to the hub was up exceed the hub's maxFrameSize (${limit} bytes) and were not sent to other workers; raise the maxFrameSize option of setupPrimary() in the primary`,
    );
  }

  countIn(payload) {
    this.counters.messagesIn++;
    this.counters.bytesIn += payload.length;
  }

  /**
   * The connection is gone: pending requests fail at once, and a new
   * connection is tried with backoff for as long as this worker's primary
   * lives (a hub restarted by a new setupPrimary() serves it again).
   */
  onDown(reason) {
    if (this.upQueue.length) {
      // Before the first handshake: what waited for it meets the error now.
      this.downReason = this.downReason ?? reason;
      this.runUpQueue();
    }
    if (this.closed || (this.downReason !== null && this.retryTimer !== null)) return;
    const wasUp = this.downReason === null;
    this.downReason = reason;
    // Broadcasts waiting for their echo will not get one.
    for (const set of this.adapters.values()) for (const a of set) a.onLinkDown();
    this.stopReading();
    this.native.close();
    if (wasUp) {
      warnings.warn(
        `socket.io-cluster-rs: lost the hub (${reason}); this worker keeps serving its own clients, cluster-wide operations fail until it is back`,
        "hub-lost",
      );
    }
    this.pending.failAll(reason);
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    // A cluster worker whose primary is gone exits anyway; nothing to wait for.
    if ((this.adapters.size === 0 && this.emitters === 0) || (typeof process.send === "function" && !process.connected)) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts);
    this.attempts++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed) this.connect();
    }, delay);
    // Unref'd: retrying never keeps a worker running.
    this.retryTimer.unref();
  }
}

/**
 * The encoded hub header of a publish of `kind` to `nsp`, for
 * HubLink#publishWith(); `rooms` as for HubLink#publish().
 */
function publishHeader(nsp, kind, volatile, rooms) {
  return binding.publishHeader(nspKey(nsp), kind, volatile, rooms);
}

/**
 * Turns the addon's size errors into a RangeError that names the option to
 * raise; other errors (a full queue) pass through with their code.
 */
function sizeChecked(send) {
  try {
    return send();
  } catch (err) {
    const where = {
      [ErrorCode.FRAME_TOO_LARGE]: "createAdapter()",
      [ErrorCode.HUB_FRAME_TOO_LARGE]: "setupPrimary() in the primary",
    }[err.code];
    if (!where) throw err;
    const e = new RangeError(`socket.io-cluster-rs: ${err.message}; raise the maxFrameSize option of ${where} to send it`);
    e.code = ErrorCode.FRAME_TOO_LARGE;
    throw e;
  }
}

/** The process-wide link to the hub at `path`, created on first use. */
function acquireLink(path, opts) {
  let link = links.get(path);
  if (!link) {
    link = new HubLink(path, opts);
    links.set(path, link);
  }
  return link;
}

module.exports = { acquireLink, publishHeader };
