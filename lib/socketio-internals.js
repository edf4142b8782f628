"use strict";
// Every private part of Socket.IO and Engine.IO this package relies on, in
// one place. Each is used when it is there and replaced by a slower public
// path when a Socket.IO upgrade removes it (logged once under
// socket.io-cluster-rs:internals). checkServer() looks at the server-level
// parts when an adapter is created and fails clearly when one has no
// replacement; the socket-level parts are looked at on every use (a typeof
// check), since only a socket shows which classes the app's Socket.IO has.

const { EventEmitter } = require("node:events");
const path = require("node:path");
const debug = require("./debug").logger("internals");

const fallbacksUsed = new Set();

function usingFallback(what) {
  if (fallbacksUsed.has(what)) return;
  fallbacksUsed.add(what);
  debug("this Socket.IO version has no %s; using the public fallback", what);
}

/**
 * Checks, for the adapter of namespace `nsp`, that a parser can be found
 * (decodePacket() needs one; throws an Error that names what is missing) and
 * logs the server-level parts that will use their fallback.
 */
function checkServer(nsp) {
  parserOf(nsp.server);
  if (typeof nsp._onServerSideEmit !== "function") usingFallback("Namespace#_onServerSideEmit");
}

/** The parser module of `server` (socket.io-parser unless the app set another). */
function parserOf(server) {
  // Server#_parser: the `parser` option or socket.io-parser.
  if (server._parser && typeof server._parser.Decoder === "function") return server._parser;
  usingFallback("Server#_parser");
  if (server.opts && server.opts.parser) return server.opts.parser;
  try {
    const socketIoDir = path.dirname(require.resolve("socket.io/package.json"));
    return require(require.resolve("socket.io-parser", { paths: [socketIoDir] }));
  } catch (err) {
    throw new Error(
      `socket.io-cluster-rs: cannot find Socket.IO's parser (Server#_parser is gone and socket.io-parser cannot be loaded: ${err.message}); please report this with your socket.io version`,
    );
  }
}

/** Decodes encoder output back into a packet with the server's own parser. */
function decodePacket(server, encoded) {
  const decoder = new (parserOf(server).Decoder)();
  let packet = null;
  decoder.on("decoded", (p) => (packet = p));
  for (const part of encoded) decoder.add(part);
  if (!packet) throw new Error("could not decode a broadcast packet");
  delete packet.id;
  return packet;
}

/** Runs the namespace's own listeners for a serverSideEmit() from another server. */
function emitServerSide(nsp, args) {
  // Namespace#_onServerSideEmit: EventEmitter#emit, bypassing Namespace#emit
  // (which broadcasts to clients).
  if (typeof nsp._onServerSideEmit === "function") return nsp._onServerSideEmit(args);
  usingFallback("Namespace#_onServerSideEmit");
  EventEmitter.prototype.emit.apply(nsp, args);
}

/** Writes already-encoded packets to a socket's client. */
function writeEncoded(socket, encoded, opts) {
  const client = socket.client;
  if (typeof client.writeToEngine === "function") return client.writeToEngine(encoded, opts);
  usingFallback("Client#writeToEngine");
  // What writeToEngine() does, with Engine.IO's public Socket#write().
  const conn = client.conn;
  if (opts.volatile && !conn.transport.writable) return;
  for (const part of Array.isArray(encoded) ? encoded : [encoded]) conn.write(part, opts);
}

/** True when `socket.onAnyOutgoing()` listeners must see the packet. */
function hasOutgoingListeners(socket) {
  // Socket#_anyOutgoingListeners: read as it is (undefined until a listener
  // is added), where the public listenersAnyOutgoing() allocates per socket
  // per broadcast.
  const listeners = socket._anyOutgoingListeners;
  if (listeners !== undefined) return listeners.length > 0;
  if (keepsOutgoingListenersInField(Object.getPrototypeOf(socket))) return false;
  return socket.listenersAnyOutgoing().length > 0;
}

let probedProto = null;
let probedAnswer = false;

/** Whether sockets of `proto` keep onAnyOutgoing() listeners in `_anyOutgoingListeners`, found by trying once. */
function keepsOutgoingListenersInField(proto) {
  if (proto === probedProto) return probedAnswer;
  let answer = false;
  try {
    const probe = Object.create(proto);
    probe.onAnyOutgoing(() => {});
    answer = Array.isArray(probe._anyOutgoingListeners) && probe._anyOutgoingListeners.length === 1;
  } catch {
    answer = false;
  }
  if (!answer) usingFallback("Socket#_anyOutgoingListeners");
  probedProto = proto;
  probedAnswer = answer;
  return answer;
}

/** Calls the socket's onAnyOutgoing() listeners with `packet`. */
function notifyOutgoing(socket, packet) {
  if (typeof socket.notifyOutgoingListeners === "function") return socket.notifyOutgoingListeners(packet);
  usingFallback("Socket#notifyOutgoingListeners");
  for (const listener of socket.listenersAnyOutgoing().slice()) listener.apply(socket, packet.data);
}

/**
 * True when the client's transport writes precomputed WebSocket frames as
 * they are, binary ones included (a client that asked for base64 does not).
 * Without Engine.IO's WebSocket#_canSendPreEncodedFrame, never: messages are
 * then written one by one.
 */
function takesFrames(socket) {
  const transport = socket.conn && socket.conn.transport;
  if (!transport || transport.supportsBinary === false) return false;
  if (typeof transport._canSendPreEncodedFrame !== "function") {
    if (transport.name === "websocket") usingFallback("WebSocket#_canSendPreEncodedFrame");
    return false;
  }
  return transport._canSendPreEncodedFrame({ options: { wsPreEncodedFrame: [] } });
}

/**
 * Makes the adapter's next serverCount() answer `promise`. socket.io calls
 * serverCount() synchronously right after broadcastWithAck(), to know how
 * many servers' client counts to wait for; answering with the number of
 * servers actually asked keeps the two consistent. The adapter's
 * serverCount() must return `adapter._ackServerCount` when set.
 */
function answerNextServerCount(adapter, promise) {
  adapter._ackServerCount = promise;
  queueMicrotask(() => {
    if (adapter._ackServerCount === promise) adapter._ackServerCount = null;
  });
}

module.exports = {
  checkServer,
  decodePacket,
  emitServerSide,
  writeEncoded,
  hasOutgoingListeners,
  notifyOutgoing,
  takesFrames,
  answerNextServerCount,
  fallbacksUsed,
};
