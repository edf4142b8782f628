"use strict";
// Connection state recovery across workers: real clusters with
// `connectionStateRecovery` on, real clients whose TCP connection is cut
// (the WebSocket's socket destroyed, not a polite engine.close()), coming
// back to the same worker or to another one.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { io: ioc } = require("socket.io-client");
const { startCluster, nextEvent, sleep, waitFor } = require("./helpers/cluster");

const T = { timeout: 30_000 };
// Every client made here, closed at the end whatever happened (a client that
// reconnects would otherwise keep this process alive).
const clients = [];
after(() => clients.forEach((s) => s.close()));
const RECOVERY = { connectionStateRecovery: { maxDisconnectionDuration: 3000, skipMiddlewares: true } };

/** A client of worker `i` that records the first argument of every "m" event. */
async function client(c, i) {
  const socket = ioc(url(c, i), { transports: ["websocket"], forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 50 });
  clients.push(socket);
  socket.got = [];
  socket.on("m", (value) => socket.got.push(value));
  await nextEvent(socket, "connect", 5000);
  return socket;
}

function url(c, i) {
  return `http://127.0.0.1:${c.workers[i].port}`;
}

/**
 * Cuts the client's TCP connection under its WebSocket, as a network failure
 * would, and points its reconnection at worker `to` (as a load balancer may
 * send it anywhere). Resolves once worker `from` has noticed the cut; the
 * client reconnects by itself after `delay` ms, with socket.io-client's own
 * session id and offset.
 */
async function cut(c, from, socket, to, delay = 50) {
  const id = socket.id;
  socket.io.uri = url(c, to);
  socket.io.reconnectionDelay(delay).reconnectionDelayMax(delay).randomizationFactor(0);
  socket.io.engine.transport.ws._socket.destroy();
  await waitFor(async () => !(await c.exec(from, ({ io }, sid) => io.of("/").sockets.has(sid), id)), 5000, "the server to notice the cut");
}

/** Resolves once `socket` is connected again. */
function reconnected(socket, timeout = 5000) {
  return socket.connected ? Promise.resolve() : nextEvent(socket, "connect", timeout);
}

describe("connection state recovery across workers", () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, serverOpts: RECOVERY });
  });
  after(() => c && c.close());

  for (const [from, to, name] of [
    [0, 0, "the same worker"],
    [0, 1, "another worker"],
  ]) {
    it(`a client that comes back to ${name} gets its id, rooms, data and every missed packet once, in order`, T, async () => {
      const a = await client(c, from);
      const witness = await client(c, to === from ? 1 - from : to);
      await c.exec(from, ({ socketOf }, id) => {
        const s = socketOf(id);
        s.join("news");
        s.data = { name: "alice", bytes: Buffer.from([1, 2]) };
      }, a.id);
      await c.exec(from, ({ io }) => io.emit("m", "before"));
      await waitFor(() => a.got.includes("before") && witness.got.includes("before"), 3000, "the first message");
      assert.equal(typeof a._lastOffset, "string", "the client keeps the offset of the last packet");
      const id = a.id;
      await cut(c, from, a, to, 500);
      a.got.length = 0;
      witness.got.length = 0;
      // Missed: broadcasts from both workers, to everyone and to the room, binary included.
      await c.exec(0, ({ io }) => io.emit("m", "w0-1"));
      await c.exec(1, ({ io }) => io.to("news").emit("m", "w1-news"));
      await c.exec(1, ({ io }) => io.emit("m", "w1-2"));
      await c.exec(0, ({ io }) => io.emit("m", Buffer.from("bin")));
      await c.exec(0, ({ io }) => io.to("elsewhere").emit("m", "not for a"));
      await waitFor(() => witness.got.length === 3, 3000, "the witness to get what it should");

      await reconnected(a);
      const back = a;
      await waitFor(() => back.got.length >= 4, 3000, "the missed packets");
      await sleep(100);
      assert.equal(back.recovered, true);
      assert.equal(back.id, id);
      const norm = (list) => list.map((v) => (Buffer.isBuffer(v) || v instanceof ArrayBuffer ? `buf:${Buffer.from(v)}` : v));
      assert.deepEqual(norm(back.got), ["w0-1", "w1-news", "w1-2", "buf:bin"]);
      // The witness (not in "news") saw the rest in the same order.
      assert.deepEqual(norm(witness.got), ["w0-1", "w1-2", "buf:bin"]);
      const restored = await c.exec(to, ({ socketOf }, id) => {
        const s = socketOf(id);
        return { rooms: [...s.rooms].sort(), data: s.data };
      }, id);
      assert.deepEqual(restored.rooms, [id, "news"].sort());
      assert.equal(restored.data.name, "alice");
      assert.deepEqual([...Buffer.from(restored.data.bytes)], [1, 2]);

      // It keeps receiving room broadcasts from every worker, and recovers again after a second cut.
      await c.exec(from === 0 ? 1 : 0, ({ io }) => io.to("news").emit("m", "after"));
      await waitFor(() => back.got.includes("after"), 3000, "a room broadcast after recovery");
      await cut(c, to, back, from, 300);
      await c.exec(0, ({ io }) => io.emit("m", "second gap"));
      await reconnected(back);
      await waitFor(() => back.got.includes("second gap"), 3000, "the packet of the second gap");
      assert.equal(back.recovered, true);
      assert.equal(back.id, id);
      assert.equal(back.got.filter((v) => v === "second gap").length, 1, "once");
      for (const s of [witness, back]) s.close();
    });
  }

  it("a private socket.emit() missed while away is replayed", T, async () => {
    const a = await client(c, 0);
    await c.exec(0, ({ socketOf }, id) => socketOf(id).emit("m", "first"), a.id);
    await waitFor(() => a.got.includes("first"), 3000, "the first private message");
    const id = a.id;
    await cut(c, 0, a, 1, 300);
    a.got.length = 0;
    await c.exec(0, ({ io }, sid) => io.to(sid).emit("m", "private while away"), id);
    await reconnected(a);
    await waitFor(() => a.got.length >= 1, 3000, "the private message");
    assert.equal(a.recovered, true);
    assert.deepEqual(a.got, ["private while away"]);
    a.close();
  });

  it("a client of a worker that was SIGKILLed recovers on another worker, rooms and data as last synced", T, async () => {
    const index = await c.fork();
    const a = await client(c, index);
    const id = a.id;
    await c.exec(index, ({ socketOf }, sid) => {
      socketOf(sid).data = { name: "bob" };
      socketOf(sid).join("crew"); // a room change syncs the state to the hub
    }, id);
    await c.exec(0, ({ io }) => io.to("crew").emit("m", "hello crew"));
    await waitFor(() => a.got.includes("hello crew"), 3000, "a room message");
    a.got.length = 0;
    a.io.uri = url(c, 1);
    a.io.reconnectionDelay(500).reconnectionDelayMax(500).randomizationFactor(0);
    await c.kill(index);
    await c.exec(0, ({ io }) => io.to("crew").emit("m", "while the worker was dead"));
    await c.exec(1, ({ io }) => io.emit("m", "to everyone"));
    await reconnected(a);
    await waitFor(() => a.got.length >= 2, 3000, "the missed packets");
    assert.equal(a.recovered, true);
    assert.equal(a.id, id);
    assert.deepEqual(a.got, ["while the worker was dead", "to everyone"]);
    const restored = await c.exec(1, ({ socketOf }, sid) => ({ rooms: [...socketOf(sid).rooms].sort(), data: socketOf(sid).data }), id);
    assert.deepEqual(restored, { rooms: ["crew", id].sort(), data: { name: "bob" } });
    const stats = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery);
    assert.ok(stats.orphaned >= 1, "counted as orphaned");
    a.close();
  });

  it("broadcasts from the primary's emitter and from another process are replayed too", T, async () => {
    const a = await client(c, 0);
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("m", "from the primary"));
    await waitFor(() => a.got.includes("from the primary"), 3000, "the emitter's broadcast");
    assert.equal(typeof a._lastOffset, "string", "it carried an offset");
    const id = a.id;
    await cut(c, 0, a, 1, 500);
    a.got.length = 0;
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("m", "missed, from the primary"));
    await c.primaryExec(async ({ adapterModule, primaryHandle }) => {
      const other = adapterModule.createEmitter({ hubPath: primaryHandle.path });
      await other.serverCount(); // connected: the hub has told it which namespaces recover
      other.emit("m", "missed, from another emitter");
      await other.close();
    });
    await c.exec(1, ({ io }) => io.emit("m", "missed, from a worker"));
    await reconnected(a);
    await waitFor(() => a.got.length >= 3, 3000, `the missed packets, got ${JSON.stringify(a.got)} ${JSON.stringify(await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery))}`).catch(async (e) => { throw new Error(e.message + JSON.stringify(await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery))); });
    assert.equal(a.recovered, true);
    assert.equal(a.id, id);
    assert.deepEqual(a.got, ["missed, from the primary", "missed, from another emitter", "missed, from a worker"]);
    a.close();
  });

  it("volatile packets and packets with acknowledgements are not replayed (as Socket.IO's own store)", T, async () => {
    const a = await client(c, 0);
    const seen = [];
    a.onAny((event, value) => seen.push(`${event}:${value}`));
    await c.exec(1, ({ io }) => io.emit("m", "first"));
    await waitFor(() => a.got.includes("first"), 3000, "a message");
    await cut(c, 0, a, 1, 500);
    seen.length = 0;
    await c.exec(1, ({ io }) => {
      io.volatile.emit("v", "volatile");
      io.timeout(100).emit("ack-me", "with ack", () => {});
      io.emit("m", "plain");
    });
    await reconnected(a);
    await waitFor(() => seen.includes("m:plain"), 3000, "the plain packet");
    await sleep(200);
    assert.equal(a.recovered, true);
    assert.deepEqual(seen, ["m:plain"]);
    a.close();
  });

  it("past maxDisconnectionDuration the client gets a new session", { timeout: 30_000 }, async () => {
    const a = await client(c, 0);
    await c.exec(0, ({ io }) => io.emit("m", "x"));
    await waitFor(() => a.got.length === 1, 3000, "a message");
    const id = a.id;
    await cut(c, 0, a, 1, 3500);
    await reconnected(a, 8000);
    assert.equal(a.recovered, false);
    assert.notEqual(a.id, id);
    a.close();
  });

  it("the hub counts what it holds and what it restored or refused", T, async () => {
    const stats = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery);
    assert.ok(stats.restored >= 5, `restored ${stats.restored}`);
    assert.ok(stats.refusedSession >= 1, "the expired session was refused");
    // Past maxDisconnectionDuration (the test before waited that long) broadcasts age out.
    assert.ok(stats.logEvictions > 0, "aged-out broadcasts are counted");
    assert.equal(stats.logEntries, 0);
    assert.equal(stats.logBytes, 0);
  });
});

describe("connection state recovery: bounds", () => {
  it("a client whose offset fell out of the bounded log gets a new session, never a partial replay", T, async () => {
    const c = await startCluster({ workers: 2, serverOpts: RECOVERY, primaryOpts: { recoveryMaxPackets: 5 } });
    try {
      const a = await client(c, 0);
      await c.exec(0, ({ io }) => io.emit("m", "seen"));
      await waitFor(() => a.got.length === 1, 3000, "a message");
      await cut(c, 0, a, 1, 500);
      a.got.length = 0;
      await c.exec(1, ({ io }) => {
        for (let i = 0; i < 10; i++) io.emit("m", i);
      });
      await reconnected(a);
      await sleep(100);
      assert.equal(a.recovered, false);
      assert.deepEqual(a.got, []);
      const stats = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery);
      assert.equal(stats.logEntries, 5);
      assert.ok(stats.logEvictions >= 6);
      assert.equal(stats.refusedOffset, 1);
      a.close();
    } finally {
      await c.close();
    }
  });

  it("without connectionStateRecovery nothing is logged", T, async () => {
    const c = await startCluster({ workers: 2 });
    try {
      const a = await client(c, 1);
      await c.exec(0, ({ io }) => io.emit("m", "plain"));
      await waitFor(() => a.got.length === 1, 3000, "a message");
      assert.deepEqual(a.got, ["plain"]);
      const stats = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery);
      assert.deepEqual([stats.logEntries, stats.sessions], [0, 0]);
      a.close();
    } finally {
      await c.close();
    }
  });
});

describe("connection state recovery: memory", () => {
  it("while a client is away during 100k broadcasts of 1 KiB, the hub keeps within recoveryMaxBytes plus a fixed overhead", { timeout: 120_000 }, async (t) => {
    const LIMIT = 4 * 1024 * 1024;
    const c = await startCluster({ workers: 2, serverOpts: RECOVERY, primaryOpts: { recoveryMaxBytes: LIMIT, recoveryMaxPackets: 1_000_000 } });
    try {
      const rss = () => Number(/VmRSS:\s+(\d+)/.exec(require("node:fs").readFileSync(`/proc/${c.child.pid}/status`, "utf8"))[1]) * 1024;
      const a = await client(c, 0);
      await c.exec(1, ({ io }) => io.emit("m", "warm-up"));
      await waitFor(() => a.got.length === 1, 3000, "a message");
      await cut(c, 0, a, 1, 60_000);
      const before = rss();
      await c.exec(1, async ({ io }) => {
        const payload = "x".repeat(1000);
        for (let i = 0; i < 100_000; i++) {
          io.emit("m", i, payload);
          if (i % 500 === 499) await new Promise((r) => setImmediate(r));
        }
      }, undefined, { timeout: 100_000 });
      const stats = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().recovery);
      const grown = rss() - before;
      t.diagnostic(`primary RSS grew ${(grown / 1048576).toFixed(1)} MiB; log ${(stats.logBytes / 1048576).toFixed(1)} MiB, ${stats.logEvictions} evicted`);
      assert.ok(stats.logBytes <= LIMIT, `log bytes ${stats.logBytes}`);
      assert.ok(stats.logEvictions >= 90_000, `evictions ${stats.logEvictions}`);
      // 100 MiB went through; what stays is the log's bound plus the hub's buffers.
      assert.ok(grown < LIMIT + 32 * 1024 * 1024, `the primary grew by ${(grown / 1048576).toFixed(1)} MiB`);
      a.close();
    } finally {
      await c.close();
    }
  });
});

describe("connection state recovery: the ipc transport", () => {
  it("says at start-up that it cannot recover, and clients get new sessions", T, async () => {
    // Workers that find no hub (here: pointed at an address where none listens) use the ipc transport.
    const c = await startCluster({ workers: 2, serverOpts: RECOVERY, env: { SOCKET_IO_CLUSTER_RS_HUB: "/nonexistent/hub.sock" } });
    try {
      assert.deepEqual(await c.execAll(({ io }) => io.of("/").adapter.transport), ["ipc", "ipc"]);
      await waitFor(() => /ipc transport.*cannot recover sessions/.test(c.output()), 3000, "the warning");
      const a = await client(c, 0);
      await c.exec(1, ({ io }) => io.emit("m", "x"));
      await waitFor(() => a.got.length === 1, 3000, "a message");
      const id = a.id;
      await cut(c, 0, a, 1, 100);
      await reconnected(a);
      assert.equal(a.recovered, false);
      assert.notEqual(a.id, id);
      a.close();
    } finally {
      await c.close();
    }
  });
});

describe("connection state recovery: exactness under load", () => {
  it("a client restored while another worker keeps broadcasting gets every packet once, with no gap", { timeout: 60_000 }, async () => {
    const c = await startCluster({ workers: 3, serverOpts: RECOVERY });
    try {
      const a = await client(c, 0);
      await c.exec(0, ({ socketOf }, id) => socketOf(id).join("feed"), a.id);
      // Worker 2 broadcasts a counter to "feed" (20 per millisecond) until told to stop.
      await c.exec(2, ({ io, state }) => {
        let n = 0;
        state.feed = setInterval(() => {
          for (let i = 0; i < 20; i++) io.to("feed").emit("m", n++);
        }, 1);
      });
      await waitFor(() => a.got.length > 100, 5000, "the feed");
      const id = a.id;
      // Back and forth between workers 0 and 1, which have no other member of "feed": the
      // restored socket's room must reach the hub in time, and what arrives meanwhile wait for it.
      for (const [from, to] of [[0, 1], [1, 0], [0, 1]]) {
        await cut(c, from, a, to, 100);
        await reconnected(a);
        assert.equal(a.recovered, true);
        await sleep(300);
      }
      const last = await c.exec(2, ({ state }) => {
        clearInterval(state.feed);
        return true;
      });
      assert.equal(last, true);
      await sleep(300);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      const got = a.got;
      const gaps = [];
      for (let i = 1; i < got.length; i++) if (got[i] !== got[i - 1] + 1) gaps.push([got[i - 1], got[i]]);
      assert.deepEqual(gaps, [], `${got.length} packets, from ${got[0]} to ${got[got.length - 1]}`);
      a.close();
    } finally {
      await c.close();
    }
  });
});
