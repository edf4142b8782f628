"use strict";
// NodeClusterAdapter over the native hub: the adapter's API. It extends
// socket.io-adapter's in-memory Adapter (rooms and sids stay JS Maps and
// Sets) and reproduces the cluster semantics of @socket.io/cluster-adapter
// 0.3.0: the same sync/async shape of every method, publish-then-apply
// ordering, exact error strings.
//
// Broadcasts travel already encoded: the emitter encodes the packet once with
// the server's own encoder, writes those bytes to its clients and ships them
// (lib/broadcast-wire.js); receivers write them to their clients without
// parsing or re-encoding (lib/held.js). Requests: lib/requests.js.

const { randomBytes } = require("node:crypto");
const { Adapter } = require("socket.io-adapter");
const debug = require("./debug").logger();
const { pack, unpack, splitParts, encodeOptions, decodeOptions } = require("./codec");
const { acquireLink } = require("./link");
const { serveSticky } = require("./sticky");
const { resolveOptions } = require("./options");
const { findHub } = require("./hub-path");
const { IpcClusterAdapter } = require("./ipc-adapter");
const { HeldBroadcasts } = require("./held");
const { kindsOf, encodedOf } = require("./frames");
const { ErrorCode } = require("./generated/error-codes");
const { Kind } = require("./stock-protocol");
const { broadcastParts, readMeta, targetRooms, PublishHeaders, toBuffers, fromBuffers } = require("./broadcast-wire");
const { holdLocal, closeLocalGroup } = require("./local-delivery");
const requests = require("./requests");
const internals = require("./socketio-internals");
const { AdapterRecovery, recoveryOf, isRecoverable } = require("./recovery");

let hubUnusableWarned = false;

/** Says once per process why this worker cannot use its primary's hub. */
function warnHubUnusable(reason) {
  if (hubUnusableWarned) return;
  hubUnusableWarned = true;
  console.warn(`socket.io-cluster-rs: cannot use the hub (${reason}); this worker uses the ipc transport`);
}

// The node id of the hub's Redis bridge (src/hub.rs BRIDGE_NODE): it passes
// answers on to other hosts in the stock Redis adapter's JSON, so answers to
// it never use v8 serialization (see jsonAnswers()).
const BRIDGE_NODE = 0xffffffff;

/**
 * `link` answering in JSON only: a part that pack() wrote with v8 is written
 * again as JSON.stringify() writes its value (a Buffer as
 * `{ type: "Buffer", data }`, as the stock Redis adapter sends it), or null.
 */
function jsonAnswers(link) {
  const asJson = (part) => {
    if (part[0] !== 0xff) return part;
    try {
      return Buffer.from(JSON.stringify(unpack(part)) ?? "null");
    } catch {
      return Buffer.from("null");
    }
  };
  return {
    respond: (id, last, parts) => link.respond(id, last, parts.map(asJson)),
    maxPayload: () => link.maxPayload(),
  };
}

function randomId() {
  return randomBytes(8).toString("hex");
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
    internals.checkServer(nsp);
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
    // Hub headers of broadcasts to everyone and to one room.
    this._headers = new PublishHeaders(nsp.name);
    this._link = acquireLink(hubPath, opts);
    this._link.attach(this);
    // Connections from the primary's sticky balancer, when it runs one.
    serveSticky(nsp.server, hubPath);
    // The hub routes room broadcasts only to workers with a member in the
    // room, so it must know which rooms have local members here.
    this._onCreateRoom = (room) => this._link.roomAdd(this.nsp.name, room);
    this._onDeleteRoom = (room) => this._link.roomDel(this.nsp.name, room);
    this.on("create-room", this._onCreateRoom);
    this.on("delete-room", this._onDeleteRoom);
    // Connection state recovery, when the server runs with it (lib/recovery.js).
    const recovery = recoveryOf(nsp);
    this._recovery = recovery ? new AdapterRecovery(this, recovery) : null;
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
    if (this._recovery && isRecoverable(packet, flags)) return this._recordBroadcast(packet, opts, flags);
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
   * A recoverable broadcast (connection state recovery): its packet ends
   * with an offset, the hub logs it, sends it on, and echoes the offset back;
   * this worker's own clients get it then, in the hub's order.
   */
  _recordBroadcast(packet, opts, flags) {
    const packetOpts = { preEncoded: true, volatile: false, compress: flags.compress };
    packet.nsp = this.nsp.name;
    const offset = this._recovery.nextOffset();
    packet.data.push(offset);
    const encoded = this._encode(packet, packetOpts);
    try {
      const parts = broadcastParts(opts, flags, encoded, packetOpts);
      this._link.record(this.nsp.name, targetRooms(opts), offset, parts);
      // Delivered on its echo like a remote broadcast, held with those around it.
      this._recovery.sent(offset, () => this._onRemoteBroadcast(parts));
    } catch (err) {
      // Without the hub (or too large for it), this worker's clients still
      // get it, unlogged: it cannot be recovered.
      debug("[%s] cannot log broadcast %s: %s", this.uid, offset, err.message);
      this._deliver(opts, encoded, packetOpts, () => packet);
      if (err.code === ErrorCode.FRAME_TOO_LARGE) throw err;
    }
    return Promise.resolve();
  }

  // Connection state recovery: Socket.IO calls these (see lib/recovery.js).

  persistSession(session) {
    if (this._recovery) this._recovery.persist(session);
  }

  delAll(id) {
    if (this._recovery) this._recovery.gone(id);
    super.delAll(id);
  }

  restoreSession(pid, offset) {
    return this._recovery ? this._recovery.restore(pid, offset) : Promise.resolve(null);
  }

  _publishBroadcast(opts, volatile, parts) {
    // While a socketsJoin() is on its way, room routing must not use the
    // hub's membership (see HubLink#joinRooms()), nor the cached headers.
    const header = volatile || this._link.joinsPending > 0 ? null : this._headers.get(opts);
    if (header === null) this._link.publish(this.nsp.name, Kind.BROADCAST, volatile, targetRooms(opts), parts);
    else this._link.publishWith(header, parts);
  }

  broadcastWithAck(packet, opts, clientCountCallback, ack) {
    const flags = (opts && opts.flags) || {};
    if (flags.local) {
      // io.local acks only wait for this server (the stock adapter counted
      // every server and always timed out).
      internals.answerNextServerCount(this, Promise.resolve(1));
      return super.broadcastWithAck(packet, opts, clientCountCallback, ack);
    }
    const timeout = flags.timeout === undefined ? this._opts.requestsTimeout : flags.timeout;
    packet.nsp = this.nsp.name;
    // Shipped without an id: every receiver assigns its own (packet ids are per namespace and server).
    const encoded = this.encoder.encode(packet);
    let resolveCount;
    internals.answerNextServerCount(this, new Promise((r) => (resolveCount = r)));
    const requestId = randomId();
    try {
      const parts = [Buffer.from(JSON.stringify([encodeOptions(opts), kindsOf(encoded)])), ...toBuffers(encoded)];
      const tally = requests.ackTally(clientCountCallback, ack, resolveCount);
      this._link.request(this.nsp.name, Kind.BROADCAST, timeout, true, targetRooms(opts), parts, tally);
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
    // A request, not a publish: see HubLink#joinRooms().
    return this._sendThenApply(
      opts,
      (targets, parts) => this._link.joinRooms(this.nsp.name, targets, parts),
      { rooms },
      () => super.addSockets(opts, rooms),
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

  _publishThenApply(opts, kind, data, apply) {
    return this._sendThenApply(opts, (targets, parts) => this._link.publish(this.nsp.name, kind, false, targets, parts), data, apply);
  }

  async _sendThenApply(opts, send, data, apply) {
    // Local broadcasts made before this operation are delivered before it is
    // applied, those made after it after.
    closeLocalGroup();
    if (!(opts.flags && opts.flags.local)) {
      try {
        send(targetRooms(opts), [pack({ opts: encodeOptions(opts), ...data })]);
      } catch (err) {
        debug("[%s] error while publishing message: %s", this.uid, err.message);
      }
      await null;
      // With recovery, this worker's broadcasts reach its clients through the
      // hub: wait for those sent before this operation.
      const settled = this._recovery && this._recovery.settled(this._opts.requestsTimeout);
      if (settled) await settled;
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
      const tally = requests.socketsTally(localSockets, this._opts.partialResults, resolve, reject);
      this._link.request(this.nsp.name, Kind.FETCH_SOCKETS, timeout, false, targetRooms(opts), parts, tally);
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
    try {
      const tally = requests.serverSideTally(this._opts.partialResults, ack);
      this._link.request(this.nsp.name, Kind.SERVER_SIDE_EMIT, this._opts.requestsTimeout, false, [], [pack(packet)], tally);
    } catch (err) {
      ack(err, []);
    }
    return Promise.resolve();
  }

  // ---- cluster-wide room queries (not in the stock adapter) -----------------

  /**
   * The rooms sockets joined in this namespace, on every worker (each
   * socket's own room left out), as a Set.
   */
  allRooms() {
    return this._roomQuery({}, [], new Set(requests.roomAnswer(this, {})));
  }

  /** How many sockets are in `room`, on every worker. */
  roomSize(room) {
    return this._roomQuery({ room }, targetRooms({ rooms: new Set([room]) }), requests.roomAnswer(this, { room }));
  }

  _roomQuery(query, rooms, local) {
    return new Promise((resolve, reject) => {
      const tally = requests.roomTally(local, this._opts.partialResults, resolve, reject);
      this._link.request(this.nsp.name, Kind.ROOM_QUERY, this._opts.requestsTimeout, false, rooms, [pack(query)], tally);
    });
  }

  // ---- what other workers send ---------------------------------------------

  /** A published message from another worker. Called by the link. */
  onClusterMessage(kind, payload) {
    if (this._recovery && this._recovery.hold(() => this.onClusterMessage(kind, payload))) return;
    const parts = splitParts(payload);
    if (kind !== Kind.BROADCAST) this.flushRemote();
    switch (kind) {
      case Kind.BROADCAST:
        return this._onRemoteBroadcast(parts);
      case Kind.SOCKETS_LEAVE: {
        const m = unpack(parts[0]);
        return super.delSockets(decodeOptions(m.opts), m.rooms);
      }
      case Kind.DISCONNECT_SOCKETS: {
        const m = unpack(parts[0]);
        return super.disconnectSockets(decodeOptions(m.opts), m.close);
      }
      case Kind.SERVER_SIDE_EMIT:
        return internals.emitServerSide(this.nsp, unpack(parts[0]));
      default:
        debug("[%s] unknown message kind %d", this.uid, kind);
    }
  }

  /** A request from another worker, to answer with `id`. Called by the link. */
  onClusterRequest(id, kind, payload, from) {
    if (this._recovery && this._recovery.hold(() => this.onClusterRequest(id, kind, payload, from))) return;
    const parts = splitParts(payload);
    const link = from === BRIDGE_NODE ? jsonAnswers(this._link) : this._link;
    switch (kind) {
      case Kind.BROADCAST: {
        const [o, kinds] = JSON.parse(parts[0].toString());
        const packet = this._decodePacket(fromBuffers(parts.slice(1), kinds));
        const answer = requests.ackAnswers(link, id);
        return super.broadcastWithAck(packet, decodeOptions(o), answer.clientCount, answer.ack);
      }
      case Kind.FETCH_SOCKETS: {
        const opts = decodeOptions(unpack(parts[0]));
        return super
          .fetchSockets(opts)
          .then((sockets) => requests.respondWithSockets(link, id, sockets))
          .catch((err) => {
            debug("[%s] cannot answer fetchSockets: %s", this.uid, err.message);
            link.respond(id, true, []);
          });
      }
      case Kind.SERVER_SIDE_EMIT:
        return internals.emitServerSide(this.nsp, [...unpack(parts[0]), requests.serverSideAnswer(link, id)]);
      case Kind.ROOM_QUERY:
        return link.respond(id, true, [pack(requests.roomAnswer(this, unpack(parts[0])))]);
      case Kind.SOCKETS_JOIN: {
        // Answered once applied: the rooms it created here are announced to
        // the hub (roomAdd() writes at once) ahead of the answer.
        this.flushRemote();
        const m = unpack(parts[0]);
        super.addSockets(decodeOptions(m.opts), m.rooms);
        return link.respond(id, true, []);
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

  /** The hub logged this worker's recoverable broadcast `offset` (called by the link). */
  onEcho(offset) {
    if (!this._recovery || this._recovery.hold(() => this.onEcho(offset))) return;
    this._recovery.echoed(offset);
  }

  /** The hub connection is gone (called by the link). */
  onLinkDown() {
    if (!this._recovery) return;
    this._recovery.flush();
    this.flushRemote();
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
      if (internals.hasOutgoingListeners(socket)) internals.notifyOutgoing(socket, getPacket());
      internals.writeEncoded(socket, encoded, packetOpts);
    });
  }

  /** Decodes encoder output back into a packet with the server's own parser. */
  _decodePacket(encoded) {
    return internals.decodePacket(this.nsp.server, encoded);
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
}

module.exports = { NodeClusterAdapter };
