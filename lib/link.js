"use strict";
// The worker's connection to the hub: one per process and hub, shared by every
// namespace adapter. It dispatches what the hub sends to the adapters and
// keeps the JS half of each request (the callbacks); the Rust half (who must
// still answer, deadlines) lives in the hub.

const debug = require("debug")("socket.io-cluster-rs:link");
const binding = require("./native");

// Events of Link.drain(), see src/binding.rs.
const EV = Object.freeze({
  UP: 1,
  DOWN: 2,
  MESSAGE: 3,
  INCOMING: 4,
  ACCEPTED: 5,
  REPLY: 6,
  DEPARTED: 7,
  DONE: 8,
  TIMED_OUT: 9,
  COUNT: 10,
  DROPPED: 11,
});

const DRAIN_BATCH = 256;
const MAX_INBOX_BYTES = 64 * 1024 * 1024;
// JS-side backstop after the hub's own deadline, in case the hub stalls: a
// request always settles, and its ref'd timer keeps the process alive meanwhile.
const BACKSTOP_MS = 2_000;
const MAX_REQ = 0xffff_ffff;

const links = new Map(); // socket path → HubLink

class HubLink {
  constructor(path, opts) {
    this.path = path;
    this.opts = opts;
    this.node = null;
    this.downReason = null;
    this.adapters = new Map(); // nsp name → Set<adapter>
    this.pending = new Map(); // req id → handler
    this.nextReq = 0;
    this.counters = {
      messagesIn: 0,
      bytesIn: 0,
      messagesOut: 0,
      bytesOut: 0,
      droppedVolatile: 0,
      droppedOverflow: 0,
    };
    this.native = new binding.Link(
      path,
      opts.heartbeatTimeout,
      opts.maxFrameSize,
      MAX_INBOX_BYTES,
      () => this.drain(),
    );
    // A JS timer on purpose: it proves the event loop is alive, not just the
    // link thread. Unref'd, so it never keeps a worker running.
    this.heartbeat = setInterval(() => this.native.heartbeat(), opts.heartbeatInterval);
    this.heartbeat.unref();
  }

  get up() {
    return this.downReason === null;
  }

  attach(adapter) {
    const nsp = adapter.nsp.name;
    let set = this.adapters.get(nsp);
    if (!set) {
      set = new Set();
      this.adapters.set(nsp, set);
      this.native.register(nsp);
    }
    set.add(adapter);
  }

  detach(adapter) {
    const nsp = adapter.nsp.name;
    const set = this.adapters.get(nsp);
    if (!set || !set.delete(adapter)) return;
    if (set.size === 0) {
      this.adapters.delete(nsp);
      this.native.unregister(nsp);
    }
    if (this.adapters.size === 0) this.close();
  }

  close() {
    if (links.get(this.path) === this) links.delete(this.path);
    clearInterval(this.heartbeat);
    this.native.close();
    for (const [, handler] of this.pending) {
      handler.down("the adapter was closed");
    }
    this.pending.clear();
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
    this.countOut(parts);
    return sizeChecked(() => this.native.publish(nsp, kind, volatile, rooms, parts));
  }

  roomAdd(nsp, room) {
    this.native.roomAdd(nsp, roomKey(room));
  }

  roomDel(nsp, room) {
    this.native.roomDel(nsp, roomKey(room));
  }

  respond(id, last, parts) {
    if (!this.up) return;
    this.countOut(parts);
    try {
      sizeChecked(() => this.native.respond(id, last, parts));
    } catch (err) {
      // The requester then counts this node as answered with nothing.
      debug("cannot answer request %d: %s", id, err.message);
      this.native.respond(id, last, []);
    }
  }

  /**
   * Sends a request; `handler` gets accepted(n), reply(from, payload, last),
   * departed(node), done(), timedOut(missing) and down(reason). Returns a
   * function that forgets the request.
   */
  request(nsp, kind, timeoutMs, keep, rooms, parts, handler) {
    this.assertUp();
    const req = this.allocReq();
    const backstop = setTimeout(() => {
      if (this.pending.get(req) === entry) {
        this.pending.delete(req);
        entry.down("no answer from the hub");
      }
    }, timeoutMs + BACKSTOP_MS);
    const finish = () => {
      clearTimeout(backstop);
      this.pending.delete(req);
    };
    const entry = { ...handler };
    for (const name of ["done", "timedOut", "down"]) {
      const fn = handler[name];
      entry[name] = (arg, arg2) => {
        finish();
        if (fn) fn(arg, arg2);
      };
    }
    this.pending.set(req, entry);
    this.countOut(parts);
    try {
      sizeChecked(() => this.native.request({ req, nsp, kind, timeoutMs, keep, rooms }, parts));
    } catch (err) {
      finish();
      throw err;
    }
    return finish;
  }

  /** Number of live workers serving `nsp`, this one included. */
  count(nsp) {
    if (!this.up) return Promise.resolve(1);
    return new Promise((resolve) => {
      const req = this.allocReq();
      const settle = (n) => {
        clearTimeout(backstop);
        this.pending.delete(req);
        resolve(n);
      };
      // Also what keeps the process alive while the answer is on its way.
      const backstop = setTimeout(() => settle(1), BACKSTOP_MS);
      this.pending.set(req, { count: settle, down: () => settle(1) });
      this.native.countQuery(req, nsp);
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
      connected: this.up && this.node !== null,
      error: this.downReason,
      pendingRequests: this.pending.size,
      namespaces: [...this.adapters.keys()],
      ...this.counters,
    };
  }

  allocReq() {
    do {
      this.nextReq = this.nextReq >= MAX_REQ ? 1 : this.nextReq + 1;
    } while (this.pending.has(this.nextReq));
    return this.nextReq;
  }

  drain() {
    const events = this.native.drain(DRAIN_BATCH);
    for (const ev of events) {
      try {
        this.dispatch(ev);
      } catch (err) {
        // A bad message from one peer must not take this worker down.
        debug("error while handling event %d: %s", ev.t, err && err.stack);
      }
    }
  }

  dispatch(ev) {
    if (ev.payload) {
      this.counters.messagesIn++;
      this.counters.bytesIn += ev.payload.length;
    }
    switch (ev.t) {
      case EV.MESSAGE: {
        const set = this.adapters.get(ev.nsp);
        if (set) for (const a of set) a.onClusterMessage(ev.kind, ev.payload, ev.from);
        return;
      }
      case EV.INCOMING: {
        const set = this.adapters.get(ev.nsp);
        const adapter = set && set.values().next().value;
        if (adapter) adapter.onClusterRequest(ev.id, ev.kind, ev.payload, ev.from);
        // The namespace closed in between: say we are done so nobody waits.
        else this.respond(ev.id, true, []);
        return;
      }
      case EV.ACCEPTED:
        return this.call(ev.req, "accepted", ev.n);
      case EV.REPLY: {
        const h = this.pending.get(ev.req);
        if (h && h.reply) h.reply(ev.from, ev.payload, ev.last);
        return;
      }
      case EV.DEPARTED:
        return this.call(ev.req, "departed", ev.from);
      case EV.DONE:
        return this.call(ev.req, "done");
      case EV.TIMED_OUT:
        return this.call(ev.req, "timedOut", ev.n, ev.pids);
      case EV.COUNT:
        return this.call(ev.req, "count", ev.n);
      case EV.UP:
        this.node = ev.n;
        debug("connected to the hub at %s as node %d", this.path, ev.n);
        return;
      case EV.DOWN:
        return this.onDown(ev.reason);
      case EV.DROPPED:
        this.counters.droppedVolatile += ev.droppedVolatile;
        this.counters.droppedOverflow += ev.droppedOverflow;
        // Logged when it happens, once per episode: the hub reports drops
        // when this worker catches up after falling behind.
        console.warn(
          `socket.io-cluster-rs: this worker (pid ${process.pid}) fell behind; the hub dropped ${ev.droppedVolatile} volatile and ${ev.droppedOverflow} other messages for it`,
        );
        return;
      default:
        debug("unknown event %j", ev.t);
    }
  }

  call(req, name, arg, arg2) {
    const h = this.pending.get(req);
    if (h && h[name]) h[name](arg, arg2);
  }

  onDown(reason) {
    if (this.downReason !== null) return;
    this.downReason = reason;
    // Logged once per connection, not per message.
    console.warn(
      `socket.io-cluster-rs: lost the hub (${reason}); this worker keeps serving its own clients, cluster-wide operations will fail`,
    );
    clearInterval(this.heartbeat);
    const handlers = [...this.pending.values()];
    this.pending.clear();
    for (const h of handlers) if (h.down) h.down(reason);
    if (links.get(this.path) === this) links.delete(this.path);
  }
}

/**
 * Rooms are compared by JSON text at the hub, so the number room 1 and the
 * string room "1" stay different rooms, as they are in the adapter's Map.
 */
function roomKey(room) {
  return JSON.stringify(room);
}

/** Turns the addon's size error into a RangeError that names the option. */
function sizeChecked(send) {
  try {
    return send();
  } catch (err) {
    if (!/exceeds maxFrameSize/.test(err.message)) throw err;
    const e = new RangeError(
      `socket.io-cluster-rs: ${err.message}; raise the maxFrameSize option of createAdapter() to send it`,
    );
    e.code = "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE";
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

module.exports = { acquireLink, roomKey };
