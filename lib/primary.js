"use strict";
// setupPrimary(): starts the native hub (on its own thread) and relays
// stock-format IPC messages exactly as @socket.io/cluster-adapter 0.3.0 does,
// so workers still running the stock adapter keep working under it.

const cluster = require("node:cluster");
const { EventEmitter } = require("node:events");
const debug = require("./debug").logger("hub");
const binding = require("./native");
const { primaryHubAddress, removeDeadPrimarySockets } = require("./hub-path");
const { resolvePrimaryOptions } = require("./options");
const { SendOrder, sendUnordered } = require("./fence");
const warnings = require("./warnings");
const { isStockMessage, isResponse } = require("./stock-protocol");
const { emitterFor } = require("./emitter");

const UIDS = Symbol("socket.io-cluster-rs uids");

let primary = null;
// True once this process has started a hub (see PrimaryHandle's constructor).
let hubStarted = false;

/**
 * The primary's handle: `path` of the hub socket, `stats()`, `close()`, and
 * events "connected", "disconnected" and "refused" (refusals are printed as
 * warnings when nobody listens).
 */
class PrimaryHandle extends EventEmitter {
  constructor(opts, emitterOpts) {
    super();
    this._emitterOpts = emitterOpts;
    this._emitter = null;
    this._relay = relayStockMessage;
    cluster.on("message", this._relay);
    this.path = null;
    this._hub = null;
    this._balancer = null;
    // Workers of an earlier hub of this process reconnect to a new one, so
    // running workers are no reason to go without one then.
    if (!hubStarted && workersAlreadyRunning()) {
      // Their adapters may already speak the stock protocol over IPC: a hub
      // now would split the cluster into two groups that never see each
      // other. Relay only, like the stock primary, and say why.
      this._warn(
        "setupPrimary() was called after workers had started, so the whole cluster uses the ipc transport; call it before or right after cluster.fork() for the native transport",
      );
      if (opts.sticky || opts.redis) {
        cluster.off("message", this._relay);
        throw noHub(opts, "setupPrimary() was called after workers had started");
      }
      return;
    }
    const redisUrlError = opts.redis && binding.redisUrlError(opts.redis.url);
    if (redisUrlError) throw new TypeError(`socket.io-cluster-rs: setupPrimary() option "redis.url" is not usable: ${redisUrlError}`);
    try {
      const address = primaryHubAddress();
      removeDeadPrimarySockets(address);
      // The hub's own log (src/log.rs) costs nothing unless DEBUG asks for it
      // when setupPrimary() runs.
      const onLog = debug.enabled ? (line) => debug("%s", line) : undefined;
      this._hub = new binding.Hub(address, opts, (ev) => this._onHubEvent(ev), onLog);
      this.path = address;
    } catch (err) {
      // Another user may have taken the address or the socket directory:
      // that must not stop the application. Workers find no usable hub and
      // speak the stock protocol, relayed here.
      this._warn(`cannot start the hub (${err.message}); the whole cluster uses the ipc transport, relayed by this primary`);
      if (opts.sticky || opts.redis) {
        cluster.off("message", this._relay);
        throw noHub(opts, `the hub cannot start: ${err.message}`);
      }
      return;
    }
    hubStarted = true;
    if (opts.sticky) {
      // Listens now: a port in use throws from setupPrimary(), as listen()
      // would emit "error". Connections never reach this thread.
      try {
        this._balancer = new binding.Balancer(this.path, opts.sticky);
      } catch (err) {
        // No half-started primary: setupPrimary() may be called again.
        this._hub.close();
        this._hub = null;
        hubStarted = false;
        cluster.off("message", this._relay);
        throw err;
      }
      debug("sticky balancer listening on %s port %d", this._balancer.host, this._balancer.port);
    }
    // The primary's own worker.send() stays in order with the hub's traffic.
    this._order = new SendOrder(this._hub);
    this._onExit = () => this.close();
    process.once("exit", this._onExit);
    debug("hub listening at %s", this.path);
  }

  /**
   * Counters, connected workers and queue depths of the hub (and, with
   * `sticky`, the balancer's counters under `sticky`); null without a hub.
   */
  stats() {
    if (!this._hub) return null;
    const stats = this._hub.stats();
    if (this._balancer) stats.sticky = this._balancer.stats();
    return stats;
  }

  /**
   * Where the sticky balancer listens (`{ host, port }`, the port it picked
   * when asked for 0), or null without `sticky`.
   */
  get sticky() {
    const b = this._balancer;
    return b && b.port !== null ? { host: b.host, port: b.port } : null;
  }

  /**
   * The emitter of the main namespace ("/"), made on first use: Socket.IO
   * operations from the primary (lib/emitter.js). It needs the hub: without
   * one (the whole cluster relayed over IPC) it throws, saying why.
   */
  get emitter() {
    if (this._emitter && !this._emitter.closed) return this._emitter;
    if (!this._hub) {
      const e = new Error(
        "socket.io-cluster-rs: setupPrimary().emitter needs the hub, and this primary runs without one (see the warning printed at setupPrimary())",
      );
      e.code = "ERR_SOCKET_IO_CLUSTER_NO_HUB";
      throw e;
    }
    this._emitter = emitterFor(this.path, this._emitterOpts);
    return this._emitter;
  }

  /** The emitter of namespace `nsp`. */
  of(nsp) {
    return this.emitter.of(nsp);
  }

  /** Stops the hub, removes its socket file and the stock relay. */
  close() {
    if (this._emitter) {
      this._emitter.close();
      this._emitter = null;
    }
    if (this._balancer) {
      this._balancer.close();
      this._balancer = null;
    }
    if (this._hub) {
      this._order.close();
      this._hub.close();
      this._hub = null;
      process.off("exit", this._onExit);
    }
    cluster.off("message", this._relay);
    if (primary === this) primary = null;
  }

  _onHubEvent(ev) {
    if (ev.kind === "connected") {
      debug("worker pid %d connected as node %d", ev.pid, ev.node);
      this.emit("connected", ev);
    } else if (ev.kind === "disconnected") {
      debug("worker pid %d (node %d) disconnected%s", ev.pid, ev.node, ev.reason ? `: ${ev.reason}` : "");
      if (ev.reason && this.listenerCount("disconnected") === 0) {
        this._warn(`dropped worker pid ${ev.pid}: ${ev.reason}`, "dropped-worker");
      }
      this.emit("disconnected", ev);
    } else if (ev.kind === "redis") {
      // Once per change of state (the bridge says so only then).
      if (this.listenerCount("redis") === 0 && (ev.reason || this._redisDown)) {
        this._warn(ev.reason ? `Redis: ${ev.reason}; this host works alone until it is back` : "Redis: connected again", "redis");
      }
      this._redisDown = !!ev.reason;
      this.emit("redis", { connected: !ev.reason, reason: ev.reason || null });
    } else if (ev.kind === "refused") {
      debug("refused a connection: %s", ev.reason);
      if (this.listenerCount("refused") === 0) this._warn(`refused a connection: ${ev.reason}`, "refused");
      this.emit("refused", ev);
    }
  }

  /** A warning, rate-limited per `kind` (see lib/warnings.js). */
  _warn(text, kind) {
    warnings.warn(`socket.io-cluster-rs hub: ${text}`, kind);
  }
}

/**
 * Sticky balancing and the Redis bridge need the hub (the balancer finds
 * workers through it; the bridge is part of it): without one they would
 * silently not work.
 */
function noHub(opts, why) {
  const option = opts.sticky ? "sticky" : "redis";
  const e = new Error(`socket.io-cluster-rs: the ${option} option needs the hub, and ${why}`);
  e.code = "ERR_SOCKET_IO_CLUSTER_NO_HUB";
  return e;
}

/**
 * True when a worker has already started running (node:cluster marks it
 * "online"): in the tutorial order, fork() then setupPrimary() in the same
 * tick, none has.
 */
function workersAlreadyRunning() {
  return Object.values(cluster.workers || {}).some((w) => w && w.state && w.state !== "none");
}

/** Relays stock-format messages between workers, like the stock primary. */
function relayStockMessage(worker, message) {
  if (!isStockMessage(message)) return;
  if (!worker[UIDS]) worker[UIDS] = new Set();
  worker[UIDS].add(message.uid);
  const workers = cluster.workers || {};
  if (isResponse(message)) {
    for (const id in workers) {
      const w = workers[id];
      if (w && w[UIDS] && w[UIDS].has(message.requesterUid)) {
        sendUnordered(w, message);
        return;
      }
    }
    return;
  }
  for (const id in workers) {
    const w = workers[id];
    if (w && w.id !== worker.id) sendUnordered(w, message);
  }
}

/**
 * Starts the hub in the cluster primary. Calling it again returns the same
 * handle (the stock adapter would register a second relay and duplicate
 * every message).
 */
function setupPrimary(opts) {
  const resolved = resolvePrimaryOptions(opts);
  if (!primary) primary = new PrimaryHandle(resolved, opts && opts.emitter);
  return primary;
}

module.exports = { setupPrimary };
