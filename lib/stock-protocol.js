"use strict";
// The stock protocol of @socket.io/cluster-adapter 0.3.0, as far as this
// package speaks it: the IPC envelope ({type, data, uid, nsp, source,
// requesterUid}) the ipc transport and the primary's relay use, and the
// message type numbers, which the native transport reuses for its own kinds.
// The numbers come from socket.io-adapter, the package that defines them.

const { MessageType } = require("socket.io-adapter");

/** `source` of every stock IPC message. */
const SOURCE = "_sio_adapter";

/** Kinds of the native transport's messages: the stock types they stand for. */
const Kind = Object.freeze({
  BROADCAST: MessageType.BROADCAST,
  SOCKETS_JOIN: MessageType.SOCKETS_JOIN,
  SOCKETS_LEAVE: MessageType.SOCKETS_LEAVE,
  DISCONNECT_SOCKETS: MessageType.DISCONNECT_SOCKETS,
  FETCH_SOCKETS: MessageType.FETCH_SOCKETS,
  SERVER_SIDE_EMIT: MessageType.SERVER_SIDE_EMIT,
  // Native transport only, no stock counterpart: the rooms of a namespace,
  // or the size of one room (allRooms(), roomSize()).
  ROOM_QUERY: 100,
});

/** True for a message of the stock protocol. */
function isStockMessage(message) {
  return !!message && message.source === SOURCE;
}

/** True for a stock message that goes back to its requester only (not to every worker). */
function isResponse(message) {
  return message.type === MessageType.FETCH_SOCKETS_RESPONSE || message.type === MessageType.SERVER_SIDE_EMIT_RESPONSE;
}

module.exports = { SOURCE, MessageType, Kind, isStockMessage, isResponse };
