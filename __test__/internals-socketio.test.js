"use strict";
// lib/socketio-internals.js: each private part of Socket.IO / Engine.IO the
// adapter uses, and the public path it falls back to when an upgrade removes
// it, checked against a real server and a real client.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const internals = require("../lib/socketio-internals");

const T = { timeout: 10_000 };

describe("Socket.IO internals and their fallbacks", () => {
  let io;
  let client;
  let socket; // the server side of `client`

  before(async () => {
    const server = http.createServer();
    io = new Server(server);
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const connected = new Promise((r) => io.once("connection", r));
    client = connect(`http://127.0.0.1:${server.address().port}`, { transports: ["websocket"], reconnection: false });
    socket = await connected;
  });

  after(() => {
    client.disconnect();
    io.close();
  });

  /** Runs `fn` with `obj[key]` hidden (undefined), then puts it back. */
  async function without(obj, key, fn) {
    const own = Object.prototype.hasOwnProperty.call(obj, key);
    const saved = obj[key];
    obj[key] = undefined;
    try {
      return await fn();
    } finally {
      if (own) obj[key] = saved;
      else delete obj[key];
    }
  }

  const encode = (data) => io.encoder.encode({ type: 2, nsp: "/", data });

  for (const hidden of [false, true]) {
    const label = hidden ? "without Client#writeToEngine (Engine.IO's write())" : "with Client#writeToEngine";
    it(`writes pre-encoded packets ${label}`, T, async () => {
      const got = new Promise((r) => client.once("written", (...args) => r(args)));
      const write = () => internals.writeEncoded(socket, encode(["written", hidden, { n: 1 }]), { preEncoded: true });
      if (hidden) await without(socket.client, "writeToEngine", write);
      else write();
      assert.deepEqual(await got, [hidden, { n: 1 }]);
      assert.equal(internals.fallbacksUsed.has("Client#writeToEngine"), hidden);
    });
  }

  it("calls onAnyOutgoing() listeners without Socket#notifyOutgoingListeners", T, async () => {
    const seen = [];
    const listener = (...args) => seen.push(args);
    socket.onAnyOutgoing(listener);
    try {
      await without(socket, "notifyOutgoingListeners", () => internals.notifyOutgoing(socket, { data: ["out", 2] }));
      assert.deepEqual(seen, [["out", 2]]);
      assert.ok(internals.fallbacksUsed.has("Socket#notifyOutgoingListeners"));
    } finally {
      socket.offAnyOutgoing(listener);
    }
  });

  it("sees onAnyOutgoing() listeners when Socket#_anyOutgoingListeners is renamed", T, () => {
    // A socket whose class keeps its listeners elsewhere, as a future version might.
    const renamed = Object.create(Object.getPrototypeOf(socket));
    renamed.onAnyOutgoing = function (l) {
      (this._outgoing ||= []).push(l);
    };
    renamed.listenersAnyOutgoing = function () {
      return this._outgoing || [];
    };
    const fake = Object.create(renamed);
    assert.equal(internals.hasOutgoingListeners(fake), false);
    fake.onAnyOutgoing(() => {});
    assert.equal(internals.hasOutgoingListeners(fake), true);
    assert.ok(internals.fallbacksUsed.has("Socket#_anyOutgoingListeners"));
    // The real class still takes the fast path.
    assert.equal(internals.hasOutgoingListeners(socket), false);
    const l = () => {};
    socket.onAnyOutgoing(l);
    assert.equal(internals.hasOutgoingListeners(socket), true);
    socket.offAnyOutgoing(l);
  });

  it("decodes packets without Server#_parser (socket.io-parser found next to socket.io)", T, async () => {
    const encoded = encode(["decoded", Buffer.from([1, 2, 3])]);
    const packet = await without(io, "_parser", () => internals.decodePacket(io, encoded));
    assert.equal(packet.data[0], "decoded");
    assert.deepEqual(Buffer.from(packet.data[1]), Buffer.from([1, 2, 3]));
    assert.ok(internals.fallbacksUsed.has("Server#_parser"));
    assert.doesNotThrow(() => internals.checkServer(io.of("/")));
  });

  it("runs serverSideEmit() listeners without Namespace#_onServerSideEmit, and clients get nothing", T, async () => {
    const nsp = io.of("/");
    const got = new Promise((r) => nsp.once("cluster-event", (...args) => r(args)));
    let clientGot = false;
    client.once("cluster-event", () => (clientGot = true));
    await without(nsp, "_onServerSideEmit", () => internals.emitServerSide(nsp, ["cluster-event", 1, "a"]));
    assert.deepEqual(await got, [1, "a"]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(clientGot, false, "a server-side event is not sent to clients");
    assert.ok(internals.fallbacksUsed.has("Namespace#_onServerSideEmit"));
  });

  it("writes messages one by one without WebSocket#_canSendPreEncodedFrame", T, async () => {
    assert.equal(socket.conn.transport.name, "websocket");
    assert.equal(internals.takesFrames(socket), true);
    await without(socket.conn.transport, "_canSendPreEncodedFrame", () => {
      assert.equal(internals.takesFrames(socket), false);
    });
    assert.ok(internals.fallbacksUsed.has("WebSocket#_canSendPreEncodedFrame"));
    assert.equal(internals.takesFrames(socket), true);
  });
});
