"use strict";
// The behaviour of @socket.io/cluster-adapter 0.3.0 that users observe, on a
// real node:cluster with 3 workers and real socket.io-client connections:
// the cases of the stock package's own suite (packages/socket.io-cluster-adapter/test
// in the socket.io repository), the cluster cases of socket.io-adapter's suite,
// plus membership and namespace cases. Everything here must pass against the stock package too
// (ADAPTER_MODULE=@socket.io/cluster-adapter).
//
// Each test gets a fresh cluster: worker i has one connected client,
// clients[i], whose id is also its server-side socket id.

const { describe, it, beforeEach, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, sleep, nextEvent, record, waitFor } = require("./helpers/cluster");

const T = { timeout: 15_000 };
// How long a message that must NOT arrive is given to show up anyway.
const QUIET_MS = 150;

/** A fresh 3-worker cluster and one client per worker for every test of the block. */
function withCluster(options = {}) {
  const env = {};
  beforeEach(async () => {
    env.c = await startCluster({ workers: 3, ...options });
    env.clients = await env.c.connectAll();
  });
  afterEach(async () => {
    if (env.c) await env.c.close();
    env.c = null;
  });
  return env;
}

/** Rooms (a Set) of socket `id` of namespace `nsp` on worker `i`. */
function roomsOf(c, i, id, nsp = "/") {
  return c.exec(i, ({ socketOf }, a) => socketOf(a.id, a.nsp).rooms, { id, nsp });
}

/** Makes socket `id` on worker `i` join `rooms` (local, synchronous on that worker). */
function join(c, i, id, rooms) {
  return c.exec(i, ({ socketOf }, a) => void socketOf(a.id).join(a.rooms), { id, rooms });
}

/** Waits until socket `id` on worker `i` is (or is not) in `room`. */
function waitForRoom(c, i, id, room, present = true) {
  return waitFor(
    async () => (await roomsOf(c, i, id)).has(room) === present,
    3000,
    `socket ${id} on worker ${i} to ${present ? "join" : "leave"} ${room}`,
  );
}

/** Registers, on the given workers, a serverSideEmit listener for `event` that answers `reply` (or never). */
function onServerSide(c, workers, event, replies) {
  return Promise.all(
    workers.map((i, k) =>
      c.exec(
        i,
        ({ io, state }, a) => {
          state.received = state.received || {};
          state.received[a.event] = [];
          io.on(a.event, (...args) => {
            const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
            state.received[a.event].push(args);
            if (cb && a.reply !== undefined) cb(a.reply);
          });
        },
        { event, reply: replies ? replies[k] : undefined },
      ),
    ),
  );
}

function receivedOn(c, i, event) {
  return c.exec(i, ({ state }, ev) => (state.received && state.received[ev]) || [], event);
}

describe("broadcast", () => {
  const env = withCluster();

  it("broadcasts to all clients", T, async () => {
    const { c, clients } = env;
    const got = Promise.all(clients.map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.emit("test", 1, "2", Buffer.from([3, 4])));
    for (const args of await got) {
      assert.equal(args[0], 1);
      assert.equal(args[1], "2");
      assert.ok(Buffer.isBuffer(args[2]), `expected a Buffer, got ${JSON.stringify(args[2])}`);
      assert.deepEqual([...args[2]], [3, 4]);
    }
  });

  it("broadcasts to all clients in a namespace", T, async () => {
    const { c, clients } = env;
    await c.execAll(({ io }) => void io.of("/custom"));
    await c.waitForServerCount(3, { nsp: "/custom" });
    const custom = await Promise.all([0, 1, 2].map((i) => c.connect(i, { nsp: "/custom" })));
    const main = record(clients, "test");
    const got = Promise.all(custom.map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.of("/custom").emit("test", "custom"));
    assert.deepEqual(await got, [["custom"], ["custom"], ["custom"]]);
    await sleep(QUIET_MS);
    assert.deepEqual(main.calls, [[], [], []], "clients of / must not get a /custom broadcast");
  });

  it("broadcasts to all clients in a room", T, async () => {
    const { c, clients } = env;
    await join(c, 1, clients[1].id, "room1");
    const rec = record(clients, "test");
    const got = nextEvent(clients[1], "test");
    await c.exec(0, ({ io }) => void io.to("room1").emit("test", "r"));
    assert.deepEqual(await got, ["r"]);
    await sleep(QUIET_MS);
    assert.deepEqual(rec.calls, [[], [["r"]], []]);
  });

  it("keeps a number room apart from the string room of the same digits", T, async () => {
    const { c, clients } = env;
    await join(c, 1, clients[1].id, 7);
    await join(c, 2, clients[2].id, "7");
    const rec = record(clients, "test");
    const got = Promise.all([nextEvent(clients[1], "test"), nextEvent(clients[2], "test")]);
    await c.exec(0, ({ io }) => {
      io.to(7).emit("test", "number");
      io.to("7").emit("test", "string");
    });
    assert.deepEqual(await got, [["number"], ["string"]]);
    await sleep(QUIET_MS);
    assert.deepEqual(rec.calls, [[], [["number"]], [["string"]]]);
    const ids = await c.exec(0, async ({ io }) => (await io.in(7).fetchSockets()).map((s) => s.id));
    assert.deepEqual(ids, [clients[1].id]);
  });

  it("broadcasts to all clients except in room", T, async () => {
    const { c, clients } = env;
    await join(c, 1, clients[1].id, "room1");
    const rec = record(clients, "test");
    const got = Promise.all([nextEvent(clients[0], "test"), nextEvent(clients[2], "test")]);
    await c.exec(0, ({ io }) => void io.of("/").except("room1").emit("test", "x"));
    await got;
    await sleep(QUIET_MS);
    assert.deepEqual(rec.calls, [[["x"]], [], [["x"]]]);
  });

  it("broadcasts to local clients only", T, async () => {
    const { c, clients } = env;
    const rec = record(clients, "test");
    const got = nextEvent(clients[0], "test");
    await c.exec(0, ({ io }) => void io.local.emit("test", "local"));
    await got;
    await sleep(QUIET_MS);
    assert.deepEqual(rec.calls, [[["local"]], [], []]);
  });

  it("broadcasts with multiple acknowledgements (and forgets the request after the timeout)", T, async () => {
    const { c, clients } = env;
    clients.forEach((s, i) => s.on("test", (cb) => cb(i + 1)));
    const res = await c.exec(0, async ({ io, sleep }) => {
      const [err, responses] = await new Promise((resolve) =>
        io.timeout(500).emit("test", (...args) => resolve(args)),
      );
      await sleep(550);
      return { err, responses, ackRequests: io.of("/").adapter.ackRequests.size };
    });
    assert.equal(res.err, null);
    assert.deepEqual([...res.responses].sort(), [1, 2, 3]);
    assert.equal(res.ackRequests, 0, "ackRequests must be empty once flags.timeout has passed");
  });

  it("broadcasts with multiple acknowledgements (binary content)", T, async () => {
    const { c, clients } = env;
    clients.forEach((s, i) => s.on("test", (cb) => cb(Buffer.from([i + 1]))));
    const res = await c.exec(0, async ({ io }) => {
      const [err, responses] = await new Promise((resolve) =>
        io.timeout(500).emit("test", (...args) => resolve(args)),
      );
      return { err, allBuffers: responses.every((r) => Buffer.isBuffer(r)), bytes: responses.map((r) => r[0]) };
    });
    assert.equal(res.err, null);
    assert.equal(res.allBuffers, true, "every ack response must be a Buffer");
    assert.deepEqual(res.bytes.sort(), [1, 2, 3]);
  });

  it("broadcasts with multiple acknowledgements (no client)", T, async () => {
    const { c } = env;
    const res = await c.exec(0, async ({ io }) => {
      const [err, responses] = await new Promise((resolve) =>
        io.to("abc").timeout(500).emit("test", (...args) => resolve(args)),
      );
      return { err, responses };
    });
    assert.equal(res.err, null);
    assert.deepEqual(res.responses, []);
  });

  it("broadcasts with multiple acknowledgements (timeout)", T, async () => {
    const { c, clients } = env;
    clients[0].on("test", (cb) => cb(1));
    clients[1].on("test", (cb) => cb(2));
    clients[2].on("test", () => {}); // never answers
    const res = await c.exec(0, async ({ io, sleep }) => {
      const [err, responses] = await new Promise((resolve) =>
        io.timeout(500).emit("test", (...args) => resolve(args)),
      );
      await sleep(100);
      return { err, responses, ackRequests: io.of("/").adapter.ackRequests.size };
    });
    assert.ok(res.err instanceof Error);
    assert.equal(res.err.message, "operation has timed out");
    assert.deepEqual([...res.responses].sort(), [1, 2]);
    assert.equal(res.ackRequests, 0);
  });

  it("broadcasts with a single acknowledgement (local)", T, async () => {
    const { c, clients } = env;
    const rec = record(clients, "test");
    clients[1].on("test", (cb) => cb(2));
    const res = await c.exec(1, ({ socketOf }, id) => socketOf(id).emitWithAck("test"), clients[1].id);
    assert.equal(res, 2);
    await sleep(QUIET_MS);
    assert.equal(rec.calls[0].length + rec.calls[2].length, 0);
  });

  it("broadcasts with a single acknowledgement (remote)", T, async () => {
    const { c, clients } = env;
    const rec = record(clients, "test");
    clients[1].on("test", (cb) => cb(2));
    const res = await c.exec(
      0,
      async ({ io }, id) => {
        const sockets = await io.in(id).fetchSockets();
        return { n: sockets.length, response: await sockets[0].timeout(500).emitWithAck("test") };
      },
      clients[1].id,
    );
    assert.deepEqual(res, { n: 1, response: 2 });
    await sleep(QUIET_MS);
    assert.equal(rec.calls[0].length + rec.calls[2].length, 0);
  });

  it("delivers the broadcasts of one emitter in call order on every worker", T, async () => {
    const { c, clients } = env;
    const rec = record(clients, "seq");
    const done = Promise.all(clients.map((s) => waitFor(() => rec.calls[clients.indexOf(s)].length === 20, 3000, "20 seq")));
    await c.exec(0, ({ io }) => {
      for (let i = 0; i < 20; i++) io.emit("seq", i);
    });
    await done;
    const expected = Array.from({ length: 20 }, (_, i) => [i]);
    assert.deepEqual(rec.calls, [expected, expected, expected]);
  });
});

describe("socketsJoin", () => {
  const env = withCluster();

  it("makes all socket instances join the specified room", T, async () => {
    const { c, clients } = env;
    await c.exec(0, ({ io }) => void io.socketsJoin("room1"));
    await Promise.all(clients.map((s, i) => waitForRoom(c, i, s.id, "room1")));
  });

  it("makes the matching socket instances join the specified room", T, async () => {
    const { c, clients } = env;
    await join(c, 0, clients[0].id, "room1");
    await join(c, 2, clients[2].id, "room1");
    await c.exec(0, ({ io }) => void io.in("room1").socketsJoin("room2"));
    await waitForRoom(c, 0, clients[0].id, "room2");
    await waitForRoom(c, 2, clients[2].id, "room2");
    await sleep(QUIET_MS);
    assert.equal((await roomsOf(c, 1, clients[1].id)).has("room2"), false);
  });

  it("makes the given socket instance join the specified room", T, async () => {
    const { c, clients } = env;
    await c.exec(0, ({ io }, id) => void io.in(id).socketsJoin("room3"), clients[1].id);
    await waitForRoom(c, 1, clients[1].id, "room3");
    await sleep(QUIET_MS);
    assert.equal((await roomsOf(c, 0, clients[0].id)).has("room3"), false);
    assert.equal((await roomsOf(c, 2, clients[2].id)).has("room3"), false);
  });

  it("targets the room it just made other workers' sockets join, in the next statement", T, async () => {
    const { c, clients } = env;
    // The rooms exist only once each worker applied the join; what comes
    // next from the same worker must reach them anyway.
    for (let round = 0; round < 20; round++) {
      const got = clients.map((s) => nextEvent(s, "fresh"));
      await c.exec(0, ({ io }, r) => {
        io.socketsJoin(`fresh${r}`);
        io.to(`fresh${r}`).emit("fresh", r);
        io.in(`fresh${r}`).socketsLeave("room1");
      }, round);
      assert.deepEqual(await Promise.all(got), [[round], [round], [round]]);
    }
  });
});

describe("socketsLeave", () => {
  const env = withCluster();

  it("makes all socket instances leave the specified room", T, async () => {
    const { c, clients } = env;
    await join(c, 0, clients[0].id, "room1");
    await join(c, 2, clients[2].id, "room1");
    await c.exec(0, ({ io }) => void io.socketsLeave("room1"));
    await Promise.all(clients.map((s, i) => waitForRoom(c, i, s.id, "room1", false)));
    // The socket's own room is untouched.
    for (const [i, s] of clients.entries()) assert.deepEqual(await roomsOf(c, i, s.id), new Set([s.id]));
  });

  it("makes the matching socket instances leave the specified room", T, async () => {
    const { c, clients } = env;
    await join(c, 0, clients[0].id, ["room1", "room2"]);
    await join(c, 1, clients[1].id, ["room1", "room2"]);
    await join(c, 2, clients[2].id, ["room2"]);
    await c.exec(0, ({ io }) => void io.in("room1").socketsLeave("room2"));
    await waitForRoom(c, 0, clients[0].id, "room2", false);
    await waitForRoom(c, 1, clients[1].id, "room2", false);
    await sleep(QUIET_MS);
    assert.equal((await roomsOf(c, 2, clients[2].id)).has("room2"), true);
    assert.equal((await roomsOf(c, 1, clients[1].id)).has("room1"), true);
  });

  it("makes the given socket instance leave the specified room", T, async () => {
    const { c, clients } = env;
    await Promise.all(clients.map((s, i) => join(c, i, s.id, "room3")));
    await c.exec(0, ({ io }, id) => void io.in(id).socketsLeave("room3"), clients[1].id);
    await waitForRoom(c, 1, clients[1].id, "room3", false);
    await sleep(QUIET_MS);
    assert.equal((await roomsOf(c, 0, clients[0].id)).has("room3"), true);
    assert.equal((await roomsOf(c, 2, clients[2].id)).has("room3"), true);
  });
});

describe("disconnectSockets", () => {
  const env = withCluster();

  it("makes all socket instances disconnect", T, async () => {
    const { c, clients } = env;
    const reasons = Promise.all(clients.map((s) => nextEvent(s, "disconnect")));
    await c.exec(0, ({ io }) => void io.disconnectSockets());
    for (const [reason] of await reasons) assert.equal(reason, "io server disconnect");
    await waitFor(
      async () => (await c.execAll(({ io }) => io.of("/").sockets.size)).every((n) => n === 0),
      3000,
      "no server-side sockets left",
    );
  });

  it("makes all socket instances disconnect and close the connection (close = true)", T, async () => {
    const { c, clients } = env;
    const reasons = Promise.all(clients.map((s) => nextEvent(s, "disconnect")));
    await c.exec(0, ({ io }) => void io.disconnectSockets(true));
    for (const [reason] of await reasons) assert.equal(reason, "io server disconnect");
  });

  it("only disconnects the matching socket instances", T, async () => {
    const { c, clients } = env;
    await join(c, 2, clients[2].id, "kick");
    const gone = nextEvent(clients[2], "disconnect");
    await c.exec(0, ({ io }) => void io.in("kick").disconnectSockets());
    assert.equal((await gone)[0], "io server disconnect");
    await sleep(QUIET_MS);
    assert.equal(clients[0].connected, true);
    assert.equal(clients[1].connected, true);
  });

  it("sends a packet before all socket instances disconnect", T, async () => {
    const { c, clients } = env;
    const seen = clients.map(() => []);
    clients.forEach((s, i) => {
      s.on("bye", () => seen[i].push("bye"));
      s.on("disconnect", (reason) => seen[i].push(`disconnect: ${reason}`));
    });
    const all = Promise.all(clients.map((s) => nextEvent(s, "disconnect")));
    await c.exec(0, ({ io }) => {
      io.emit("bye");
      io.disconnectSockets(true);
    });
    await all;
    assert.deepEqual(seen, clients.map(() => ["bye", "disconnect: io server disconnect"]));
  });
});

describe("fetchSockets", () => {
  const env = withCluster();

  it("returns all socket instances", T, async () => {
    const { c, clients } = env;
    const res = await c.exec(0, async ({ io }) => {
      const sockets = await io.fetchSockets();
      return { isArray: Array.isArray(sockets), ids: sockets.map((s) => s.id), requests: io.of("/").adapter.requests.size };
    });
    assert.equal(res.isArray, true);
    assert.equal(res.ids.length, 3);
    assert.deepEqual(new Set(res.ids), new Set(clients.map((s) => s.id)));
    assert.equal(res.ids[0], clients[0].id, "the local sockets come first");
    assert.equal(res.requests, 0, "requests must be cleaned up");
  });

  it("returns a single socket instance (handshake, data, rooms)", T, async () => {
    const { c, clients } = env;
    const id = clients[1].id;
    const handshake = await c.exec(
      1,
      ({ socketOf }, id) => {
        const socket = socketOf(id);
        socket.data = "test";
        const { sessionStore, ...handshake } = socket.handshake;
        return handshake;
      },
      id,
    );
    const remote = await c.exec(
      0,
      async ({ io }, id) => {
        const sockets = await io.in(id).fetchSockets();
        const [s] = sockets;
        return { n: sockets.length, id: s.id, handshake: s.handshake, data: s.data, rooms: s.rooms, local: !!s.server };
      },
      id,
    );
    assert.equal(remote.n, 1);
    assert.equal(remote.id, id);
    assert.equal(remote.local, false, "a socket of another worker is a RemoteSocket");
    assert.deepEqual(remote.handshake, handshake);
    assert.equal(remote.data, "test");
    assert.deepEqual(remote.rooms, new Set([id]));
  });

  it("returns only local socket instances", T, async () => {
    const { c, clients } = env;
    const ids = await c.exec(0, async ({ io }) => (await io.local.fetchSockets()).map((s) => s.id));
    assert.deepEqual(ids, [clients[0].id]);
  });

  it("returns the socket instances of a room across workers", T, async () => {
    const { c, clients } = env;
    await join(c, 1, clients[1].id, "vip");
    await join(c, 2, clients[2].id, "vip");
    const ids = await c.exec(0, async ({ io }) => (await io.in("vip").fetchSockets()).map((s) => s.id));
    assert.deepEqual(new Set(ids), new Set([clients[1].id, clients[2].id]));
  });

  it("finds a socket of another worker by id right after it connected", T, async () => {
    const { c } = env;
    // 40 rounds: connect a client to worker 1, then at once ask worker 0 for it.
    const misses = [];
    for (let round = 0; round < 40; round++) {
      const client = await c.connect(1);
      const ids = await c.exec(0, async ({ io }, id) => (await io.in(id).fetchSockets()).map((s) => s.id), client.id);
      if (ids.length !== 1 || ids[0] !== client.id) misses.push(round);
      client.disconnect();
    }
    assert.deepEqual(misses, [], "rounds in which fetchSockets() missed the socket that had just connected");
  });

  it("rejects after flags.timeout when a worker does not answer", T, async () => {
    const { c } = env;
    // Worker 2 is busy (event loop blocked) for 1.5 s and cannot answer in time.
    const busy = c.exec(2, () => {
      const end = Date.now() + 1500;
      while (Date.now() < end);
    });
    await sleep(100);
    const res = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      try {
        await io.timeout(300).fetchSockets();
        return { ok: true };
      } catch (err) {
        return { ok: false, message: err.message, ms: Date.now() - t0 };
      }
    });
    await busy;
    assert.equal(res.ok, false);
    assert.equal(res.message, "timeout reached: missing 1 responses");
    assert.ok(res.ms >= 250 && res.ms < 1400, `rejected after ${res.ms} ms, expected ~300`);
  });
});

describe("serverSideEmit", () => {
  const env = withCluster();

  it("sends an event to the other server instances", T, async () => {
    const { c } = env;
    await onServerSide(c, [0, 1, 2], "hello");
    await c.exec(0, ({ io }) => void io.serverSideEmit("hello", "world", 1, "2"));
    await waitFor(
      async () => (await receivedOn(c, 1, "hello")).length && (await receivedOn(c, 2, "hello")).length,
      3000,
      "hello on workers 1 and 2",
    );
    await sleep(QUIET_MS);
    assert.deepEqual(await receivedOn(c, 1, "hello"), [["world", 1, "2"]]);
    assert.deepEqual(await receivedOn(c, 2, "hello"), [["world", 1, "2"]]);
    assert.deepEqual(await receivedOn(c, 0, "hello"), [], "the emitter does not receive its own event");
  });

  it("sends an event and receives a response from the other server instances", T, async () => {
    const { c } = env;
    await onServerSide(c, [0, 1, 2], "hello", ["self", 2, "3"]);
    const res = await c.exec(0, ({ io }) => new Promise((resolve) => io.serverSideEmit("hello", (err, responses) => resolve({ err, responses }))));
    assert.equal(res.err, null);
    assert.ok(Array.isArray(res.responses));
    assert.equal(res.responses.length, 2);
    assert.ok(res.responses.includes(2));
    assert.ok(res.responses.includes("3"));
    assert.deepEqual(await receivedOn(c, 0, "hello"), []);
  });

  it("serverSideEmitWithAck resolves with one response per other server", T, async () => {
    const { c } = env;
    await onServerSide(c, [1, 2], "ping", ["pong-1", "pong-2"]);
    const responses = await c.exec(0, ({ io }) => io.serverSideEmitWithAck("ping"));
    assert.deepEqual([...responses].sort(), ["pong-1", "pong-2"]);
  });

  it("sends an event but times out if one server does not respond", { timeout: 20_000 }, async () => {
    const { c } = env;
    await onServerSide(c, [1, 2], "hello", [2, undefined]); // worker 2 never answers
    const res = await c.exec(
      0,
      ({ io }) =>
        new Promise((resolve) => {
          const t0 = Date.now();
          io.serverSideEmit("hello", (err, responses) => resolve({ err, responses, ms: Date.now() - t0 }));
        }),
      null,
      { timeout: 10_000 },
    );
    assert.ok(res.err instanceof Error);
    assert.equal(res.err.message, "timeout reached: missing 1 responses");
    assert.deepEqual(res.responses, [2]);
    // The default request timeout is 5 s.
    assert.ok(res.ms >= 4500 && res.ms < 7000, `timed out after ${res.ms} ms, expected ~5000`);
  });

  it("succeeds even if an instance leaves the cluster", T, async () => {
    const { c } = env;
    await onServerSide(c, [1], "hello", [2]);
    // Worker 2 closes its adapter instead of answering.
    await c.exec(2, ({ io }) => {
      io.on("hello", () => io.of("/").adapter.close());
    });
    const res = await c.exec(
      0,
      ({ io }) =>
        new Promise((resolve) => {
          const t0 = Date.now();
          io.serverSideEmit("hello", (err, responses) => resolve({ err, responses, ms: Date.now() - t0 }));
        }),
      null,
      { timeout: 10_000 },
    );
    assert.equal(res.err, null);
    assert.deepEqual(res.responses, [2]);
    assert.ok(res.ms < 2000, `took ${res.ms} ms; the leaving node must settle the request, not the timeout`);
  });
});

describe("RemoteSocket (from fetchSockets on another worker)", () => {
  const env = withCluster();

  /** Runs `op(remoteSocket, arg)` on worker 0 against client 1's socket (on worker 1). */
  function onRemote(c, id, op, arg) {
    return c.exec(
      0,
      async ({ io }, a) => {
        const [remote] = await io.in(a.id).fetchSockets();
        if (!remote) throw new Error(`socket ${a.id} not found`);
        const fn = (0, eval)(`(${a.op})`);
        return fn(remote, a.arg);
      },
      { id, op: op.toString(), arg },
    );
  }

  it("emit() reaches only that socket", T, async () => {
    const { c, clients } = env;
    const rec = record(clients, "direct");
    const got = nextEvent(clients[1], "direct");
    await onRemote(c, clients[1].id, (s) => void s.emit("direct", "hi", Buffer.from([7])));
    const [text, buf] = await got;
    assert.equal(text, "hi");
    assert.ok(Buffer.isBuffer(buf));
    assert.deepEqual([...buf], [7]);
    await sleep(QUIET_MS);
    assert.equal(rec.calls[0].length + rec.calls[2].length, 0);
  });

  it("join() adds the room on the owning worker", T, async () => {
    const { c, clients } = env;
    await onRemote(c, clients[1].id, (s) => void s.join(["r1", "r2"]));
    await waitForRoom(c, 1, clients[1].id, "r1");
    await waitForRoom(c, 1, clients[1].id, "r2");
  });

  it("leave() removes the room on the owning worker", T, async () => {
    const { c, clients } = env;
    await join(c, 1, clients[1].id, ["r1", "r2"]);
    const rooms = await onRemote(c, clients[1].id, (s) => s.rooms);
    assert.deepEqual(rooms, new Set([clients[1].id, "r1", "r2"]));
    await onRemote(c, clients[1].id, (s) => void s.leave("r1"));
    await waitForRoom(c, 1, clients[1].id, "r1", false);
    assert.equal((await roomsOf(c, 1, clients[1].id)).has("r2"), true);
  });

  it("disconnect() disconnects only that socket", T, async () => {
    const { c, clients } = env;
    const gone = nextEvent(clients[1], "disconnect");
    await onRemote(c, clients[1].id, (s) => void s.disconnect());
    assert.equal((await gone)[0], "io server disconnect");
    await sleep(QUIET_MS);
    assert.equal(clients[0].connected, true);
    assert.equal(clients[2].connected, true);
  });

  it("timeout().emitWithAck() resolves with the client's answer", T, async () => {
    const { c, clients } = env;
    clients[1].on("question", (n, cb) => cb(n * 2));
    const res = await onRemote(c, clients[1].id, (s) => s.timeout(1000).emitWithAck("question", 21));
    assert.equal(res, 42);
  });

  it("timeout().emitWithAck() rejects when the client does not answer", T, async () => {
    const { c, clients } = env;
    clients[1].on("question", () => {});
    const res = await onRemote(c, clients[1].id, (s) =>
      s
        .timeout(300)
        .emitWithAck("question")
        .then(
          () => "answered",
          (err) => err.message,
        ),
    );
    assert.equal(res, "operation has timed out");
  });

  it("carries socket.data", T, async () => {
    const { c, clients } = env;
    const data = { user: "alice", n: 42, tags: ["a", "b"], nested: { ok: true, none: null } };
    await c.exec(1, ({ socketOf }, a) => void (socketOf(a.id).data = a.data), { id: clients[1].id, data });
    assert.deepEqual(await onRemote(c, clients[1].id, (s) => s.data), data);
  });

  it("carries the handshake (auth, query, headers)", T, async () => {
    const { c } = env;
    const client = await c.connect(1, { auth: { token: "abc" }, query: { room: "lobby" }, extraHeaders: { "x-test": "1" } });
    const local = await c.exec(
      1,
      ({ socketOf }, id) => {
        const { sessionStore, ...handshake } = socketOf(id).handshake;
        return handshake;
      },
      client.id,
    );
    const remote = await onRemote(c, client.id, (s) => s.handshake);
    assert.deepEqual(remote, local);
    assert.deepEqual(remote.auth, { token: "abc" });
    assert.equal(remote.query.room, "lobby");
    assert.equal(remote.headers["x-test"], "1");
    assert.equal(typeof remote.issued, "number");
    assert.equal(typeof remote.time, "string");
  });
});

describe("membership and namespaces", () => {
  const env = withCluster();

  it("serverCount() is 3 on every worker", T, async () => {
    const { c } = env;
    assert.deepEqual(await c.execAll(({ io }) => io.of("/").adapter.serverCount()), [3, 3, 3]);
  });

  it("a static namespace on every worker has its own node list", T, async () => {
    const { c } = env;
    await c.execAll(({ io }) => void io.of("/static"));
    await c.waitForServerCount(3, { nsp: "/static" });
  });

  it("dynamic namespaces: child namespaces broadcast across workers", T, async () => {
    const { c, clients } = env;
    await c.execAll(({ io, state }) => void (state.parent = io.of(/^\/dyn-\d+$/)));
    const dyn = await Promise.all([0, 1, 2].map((i) => c.connect(i, { nsp: "/dyn-1" })));
    await c.waitForServerCount(3, { nsp: "/dyn-1" });
    const main = record(clients, "test");

    let got = Promise.all(dyn.map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.of("/dyn-1").emit("test", "child"));
    assert.deepEqual(await got, [["child"], ["child"], ["child"]]);

    // Emitting on the parent emits on each of its children.
    got = Promise.all(dyn.map((s) => nextEvent(s, "test")));
    await c.exec(2, ({ state }) => void state.parent.emit("test", "parent"));
    assert.deepEqual(await got, [["parent"], ["parent"], ["parent"]]);

    // fetchSockets() in a child namespace.
    const ids = await c.exec(1, async ({ io }) => (await io.of("/dyn-1").fetchSockets()).map((s) => s.id));
    assert.deepEqual(new Set(ids), new Set(dyn.map((s) => s.id)));
    await sleep(QUIET_MS);
    assert.deepEqual(main.calls, [[], [], []]);
  });

  it("a dynamic child namespace created on two workers only counts two servers", T, async () => {
    const { c } = env;
    await c.execAll(({ io }) => void io.of(/^\/dyn-\d+$/));
    const dyn = await Promise.all([0, 1].map((i) => c.connect(i, { nsp: "/dyn-7" })));
    await c.waitForServerCount(2, { nsp: "/dyn-7", workers: [0, 1] });
    const got = Promise.all(dyn.map((s) => nextEvent(s, "test")));
    await c.exec(1, ({ io }) => void io.of("/dyn-7").emit("test", 7));
    assert.deepEqual(await got, [[7], [7]]);
    assert.equal(await c.exec(2, ({ io }) => io._nsps.has("/dyn-7")), false);
  });

  it("a namespace that exists on only some workers: smaller serverCount, broadcasts and requests reach only those", T, async () => {
    const { c } = env;
    await Promise.all([0, 1].map((i) => c.exec(i, ({ io }) => void io.of("/partial"))));
    await c.waitForServerCount(2, { nsp: "/partial", workers: [0, 1] });
    const partial = await Promise.all([0, 1].map((i) => c.connect(i, { nsp: "/partial" })));
    const got = Promise.all(partial.map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.of("/partial").emit("test", "p"));
    assert.deepEqual(await got, [["p"], ["p"]]);

    // Requests only wait for the servers that have the namespace.
    await c.exec(1, ({ io }) => void io.of("/partial").on("ping", (cb) => cb("pong-1")));
    const res = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      const sockets = await io.of("/partial").fetchSockets();
      const responses = await io.of("/partial").serverSideEmitWithAck("ping");
      return { sockets: sockets.length, responses, ms: Date.now() - t0 };
    });
    assert.deepEqual({ sockets: res.sockets, responses: res.responses }, { sockets: 2, responses: ["pong-1"] });
    assert.ok(res.ms < 2000, `took ${res.ms} ms`);
    assert.equal(await c.exec(2, ({ io }) => io._nsps.has("/partial")), false);
    assert.equal(await c.exec(0, ({ io }) => io.of("/").adapter.serverCount()), 3);
  });

  it("a worker that joins later is counted and receives broadcasts", T, async () => {
    const { c, clients } = env;
    const index = await c.fork();
    await c.waitForServerCount(4);
    const late = await c.connect(index);
    const got = Promise.all([...clients, late].map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.emit("test", "all"));
    assert.deepEqual(await got, [["all"], ["all"], ["all"], ["all"]]);
    const ids = await c.exec(index, async ({ io }) => (await io.fetchSockets()).map((s) => s.id));
    assert.equal(ids.length, 4);
  });

  it("a worker whose server closes leaves the node list of the others", T, async () => {
    const { c } = env;
    await c.exec(2, ({ io }) => void io.close());
    await c.waitForServerCount(2, { workers: [0, 1], timeout: 3000 });
  });
});
