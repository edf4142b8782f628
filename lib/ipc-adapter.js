"use strict";
// The `ipc` transport: Node's IPC channel with the stock 0.3.0 envelope
// ({type, data, uid, nsp, source: "_sio_adapter", requesterUid}), used when no
// hub is reachable — e.g. under PM2, whose daemon runs the stock primary. It
// is socket.io-adapter's ClusterAdapterWithHeartbeat (the stock logic) plus
// the fixes this package promises: one process listener for all namespaces,
// removed on close; requestsTimeout; io.local acks; no crash on values that
// cannot be cloned; and Buffers that stay binary between our own workers even
// with the default `json` serialization.

const v8 = require("node:v8");
const { randomBytes } = require("node:crypto");
const { ClusterAdapterWithHeartbeat } = require("socket.io-adapter");
const debug = require("./debug").logger("ipc");
const { sanitize } = require("./sanitize");
const { SOURCE, MessageType, isStockMessage } = require("./stock-protocol");
const { answerNextServerCount } = require("./socketio-internals");

// Extra envelope field: `data` v8-serialized (base64), so binary survives JSON
// IPC. Stock workers ignore it and read the ordinary `data`.
const SIDECAR = "_sio_rs";

const adaptersByNsp = new Map(); // nsp name → Set<IpcClusterAdapter>

function onProcessMessage(message) {
  if (!isStockMessage(message)) return;
  const set = adaptersByNsp.get(message.nsp);
  if (!set) return;
  if (typeof message[SIDECAR] === "string") {
    try {
      message.data = v8.deserialize(Buffer.from(message[SIDECAR], "base64"));
    } catch (err) {
      debug("ignoring an unreadable binary sidecar: %s", err.message);
    }
  }
  for (const adapter of set) adapter.onMessage(message);
}

function attach(adapter) {
  if (adaptersByNsp.size === 0) process.on("message", onProcessMessage);
  let set = adaptersByNsp.get(adapter.nsp.name);
  if (!set) adaptersByNsp.set(adapter.nsp.name, (set = new Set()));
  set.add(adapter);
}

function detach(adapter) {
  const set = adaptersByNsp.get(adapter.nsp.name);
  if (!set || !set.delete(adapter)) return;
  if (set.size === 0) adaptersByNsp.delete(adapter.nsp.name);
  if (adaptersByNsp.size === 0) process.off("message", onProcessMessage);
}

function usesJsonSerialization() {
  return process.env.NODE_CHANNEL_SERIALIZATION_MODE !== "advanced";
}

function hasBinary(value, depth = 0) {
  if (value === null || typeof value !== "object" || depth > 16) return false;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return true;
  if (Array.isArray(value)) return value.some((v) => hasBinary(v, depth + 1));
  if (typeof value.toJSON === "function") return false;
  for (const key in value) if (hasBinary(value[key], depth + 1)) return true;
  return false;
}

// ERR_IPC_CHANNEL_CLOSED during shutdown goes here instead of crashing.
function ignoreError() {}

/** Throws a TypeError when `value` cannot cross the IPC channel as it is. */
function assertSendable(value, what) {
  try {
    if (usesJsonSerialization()) JSON.stringify(value);
    else v8.serialize(value);
  } catch (err) {
    throw new TypeError(`socket.io-cluster-rs: ${what} cannot be sent to other workers: ${err.message}`);
  }
}

/**
 * process.send() that never throws: a message that cannot be sent as it is
 * goes with the offending values replaced by null, so that a request is
 * answered (with nulls) instead of timing out.
 */
function send(message) {
  const json = usesJsonSerialization();
  if (json && message.data !== undefined && hasBinary(message.data)) {
    try {
      message[SIDECAR] = v8.serialize(sanitize(message.data)).toString("base64");
    } catch (err) {
      debug("cannot attach binary sidecar: %s", err.message);
    }
  }
  try {
    process.send(message, null, {}, ignoreError);
  } catch (err) {
    try {
      process.send(sanitize(message, { lenient: true, json }), null, {}, ignoreError);
      debug("message of type %d had values that cannot be sent (%s); sent them as null", message.type, err.message);
    } catch (err2) {
      debug("cannot send message of type %d to other workers: %s", message.type, err2.message);
    }
  }
}

class IpcClusterAdapter extends ClusterAdapterWithHeartbeat {
  /**
   * @param nsp - the namespace
   * @param opts - resolved options (lib/options.js)
   */
  constructor(nsp, opts) {
    if (typeof process.send !== "function") {
      // Checked before super() so that no heartbeat timer is left behind
      // (the stock adapter threw here and crashed 5 s later from its timer).
      throw new Error(
        "socket.io-cluster-rs: this process has no hub and no IPC channel; create the adapter in a node:cluster worker whose primary called setupPrimary()",
      );
    }
    super(nsp, { heartbeatInterval: opts.heartbeatInterval, heartbeatTimeout: opts.heartbeatTimeout });
    this.transport = "ipc";
    if (nsp.server && nsp.server.opts && nsp.server.opts.connectionStateRecovery) warnNoRecovery();
    this._requestsTimeout = opts.requestsTimeout;
    this._initialized = false;
    this._closed = false;
    this._ackServerCount = null;
    attach(this);
    // socket.io < 4.8.2 does not call init() itself.
    this.init();
  }

  /** Announces this node once, even though socket.io ≥ 4.8.2 calls it again. */
  init() {
    if (this._initialized) return;
    this._initialized = true;
    super.init();
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    super.close();
    detach(this);
  }

  doPublish(message) {
    message.source = SOURCE;
    send(message);
    return Promise.resolve("");
  }

  doPublishResponse(requesterUid, response) {
    response.source = SOURCE;
    response.requesterUid = requesterUid;
    send(response);
    return Promise.resolve();
  }

  serverCount() {
    return this._ackServerCount || super.serverCount();
  }

  /** Cluster-wide room queries need the hub (the stock protocol has no message for them). */
  allRooms() {
    return Promise.reject(noRoomQueries());
  }

  roomSize() {
    return Promise.reject(noRoomQueries());
  }

  /** What this adapter knows of the cluster; the ipc transport has no hub counters. */
  stats() {
    return {
      transport: "ipc",
      serialization: usesJsonSerialization() ? "json" : "advanced",
      nodes: this.nodesMap.size,
      pendingRequests: this.customRequests.size,
      namespaces: [...adaptersByNsp.keys()],
    };
  }

  broadcastWithAck(packet, opts, clientCountCallback, ack) {
    if (opts && opts.flags && opts.flags.local) {
      // Only this server answers an io.local emit; say so to socket.io's count.
      answerNextServerCount(this, Promise.resolve(1));
    }
    return super.broadcastWithAck(packet, opts, clientCountCallback, ack);
  }

  fetchSockets(opts) {
    if (!(opts.flags && opts.flags.timeout)) {
      opts = { ...opts, flags: { ...opts.flags, timeout: this._requestsTimeout } };
    }
    return super.fetchSockets(opts);
  }

  /**
   * As the stock method, with `requestsTimeout` instead of a fixed 5 s, and
   * arguments that cannot be sent rejected up front (thrown, or given to the
   * ack) instead of being lost.
   */
  serverSideEmit(packet) {
    if (typeof packet[packet.length - 1] !== "function") {
      assertSendable(packet, "serverSideEmit() arguments");
      return super.serverSideEmit(packet);
    }
    const ack = packet.pop();
    try {
      assertSendable(packet, "serverSideEmit() arguments");
    } catch (err) {
      ack(err, []);
      return Promise.resolve();
    }
    if (this.nodesMap.size === 0) {
      // Asynchronous like every other answer (and like the native transport).
      queueMicrotask(() => ack(null, []));
      return Promise.resolve();
    }
    const requestId = randomBytes(8).toString("hex");
    const timeout = setTimeout(() => {
      const request = this.customRequests.get(requestId);
      if (!request) return;
      this.customRequests.delete(requestId);
      ack(new Error(`timeout reached: missing ${request.missingUids.size} responses`), request.responses);
    }, this._requestsTimeout);
    this.customRequests.set(requestId, {
      type: MessageType.SERVER_SIDE_EMIT,
      resolve: ack,
      timeout,
      missingUids: new Set(this.nodesMap.keys()),
      responses: [],
    });
    this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { requestId, packet } });
    return Promise.resolve();
  }
}

let noRecoveryWarned = false;

/** Says once per process that the ipc transport cannot recover sessions across workers. */
function warnNoRecovery() {
  if (noRecoveryWarned) return;
  noRecoveryWarned = true;
  console.warn(
    "socket.io-cluster-rs: connectionStateRecovery is enabled, but this worker uses the ipc transport (no hub of this package in its primary), which cannot recover sessions: clients that reconnect get a new session (socket.recovered === false)",
  );
}

function noRoomQueries() {
  const e = new Error("socket.io-cluster-rs: allRooms() and roomSize() need the native transport; this worker uses the ipc transport (no hub of this package in its primary)");
  e.code = "ERR_SOCKET_IO_CLUSTER_NO_HUB";
  return e;
}

module.exports = { IpcClusterAdapter };
