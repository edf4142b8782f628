"use strict";
// The hub goes away under running workers (docs/failure-behaviour.md): the
// workers keep serving their own clients, cluster-wide operations fail fast
// with a clear error (no hang, no crash, no unhandled rejection), and the
// condition is logged once per worker, not once per message.
//
// The hub is closed through the primary's handle while the primary process
// stays up: when the primary process itself dies, node:cluster workers lose
// their IPC channel and exit (a test in failure-worker-killed.test.js covers that), so there
// would be nobody left to observe.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, clusterFor, waitFor, nextEvent, sleep } = require("./helpers/cluster");

const T = { timeout: 30_000 };
const LOST_HUB = /socket\.io-cluster-rs: lost the hub/g;

describe("the hub is gone", () => {
  let c;
  let clients;
  before(async () => {
    c = await startCluster({ workers: 3 });
    clients = await c.connectAll();
    await c.execAll(({ state }) => {
      state.unhandled = [];
      process.on("unhandledRejection", (err) => state.unhandled.push(String(err && err.message)));
    });
    await c.primaryExec(({ primaryHandle }) => primaryHandle.close());
    // Every worker notices: its connection reports the hub as unreachable.
    await waitFor(
      async () => (await c.execAll(({ io }) => io.of("/").adapter.stats().connected)).every((up) => up === false),
      5000,
      "every worker to see the hub gone",
    );
  });
  after(() => c && c.close());

  it("cluster operations fail at once with a clear error, and serverCount() is 1", T, async () => {
    const r = await c.exec(0, async ({ io }) => {
      const timed = async (fn) => {
        const t0 = Date.now();
        try {
          await fn();
          return { ok: true, ms: Date.now() - t0 };
        } catch (err) {
          return { ok: false, ms: Date.now() - t0, message: err.message };
        }
      };
      return {
        fetch: await timed(() => io.fetchSockets()),
        sse: await timed(() => io.serverSideEmitWithAck("anyone")),
        sseNoAck: await timed(async () => io.serverSideEmit("anyone")),
        count: await io.of("/").adapter.serverCount(),
      };
    });
    for (const name of ["fetch", "sse", "sseNoAck"]) {
      assert.equal(r[name].ok, false, `${name} must fail`);
      assert.match(r[name].message, /hub is unreachable/, `${name}: ${r[name].message}`);
      assert.ok(r[name].ms < 200, `${name} failed after ${r[name].ms} ms`);
    }
    assert.equal(r.count, 1);
  });

  it("workers keep serving their own clients: io.emit and io.local.emit reach local clients only", T, async () => {
    const got0 = nextEvent(clients[0], "after-hub", 3000);
    const remote = [];
    clients[1].on("after-hub", (...a) => remote.push(a));
    clients[2].on("after-hub", (...a) => remote.push(a));
    const localGot = nextEvent(clients[0], "after-hub-local", 3000);
    await c.exec(0, ({ io }) => {
      io.emit("after-hub", "all", Buffer.from([1, 2]));
      io.local.emit("after-hub-local", "local");
    });
    const [text, buf] = await got0;
    assert.equal(text, "all");
    assert.deepEqual([...buf], [1, 2]);
    assert.deepEqual(await localGot, ["local"]);
    // Room operations and socket events keep working locally too.
    await c.exec(0, async ({ io, socketOf }, id) => {
      await io.in(id).socketsJoin("after");
      if (!socketOf(id).rooms.has("after")) throw new Error("local socketsJoin did not apply");
    }, clients[0].id);
    await sleep(150);
    assert.deepEqual(remote, [], "nothing can reach the other workers without the hub");
  });

  it("many failing operations log the condition once per worker, with no unhandled rejection", T, async () => {
    await c.exec(0, async ({ io }) => {
      for (let i = 0; i < 50; i++) {
        io.emit("x", i);
        await io.fetchSockets().catch(() => {});
        try {
          io.serverSideEmit("x", i);
        } catch {}
      }
    });
    await sleep(100);
    const unhandled = await c.execAll(({ state }) => state.unhandled);
    assert.deepEqual(unhandled, [[], [], []]);
    const lines = c.output().match(LOST_HUB) || [];
    assert.equal(lines.length, 3, `one "lost the hub" line per worker:\n${c.output()}`);
    assert.deepEqual(c.live(), [0, 1, 2], "no worker crashed");
  });
});

describe("the hub goes away while requests are pending", () => {
  it("pending fetchSockets() and serverSideEmitWithAck() fail at once with the reason; emitWithAck() ends at its own timeout with the acks that arrived", T, async (t) => {
    const c = await clusterFor(t, { workers: 2, adapterOpts: { requestsTimeout: 5000 } });
    const clients = await c.connectAll();
    clients.forEach((s, i) => s.on("ask", (cb) => cb(`client-${i}`)));
    await c.execAll(({ io }) => io.on("who", (cb) => cb(process.pid)));
    // Worker 1 is busy, so every request waits for it when the hub goes away.
    const busy = c.exec(1, () => {
      const end = Date.now() + 1500;
      while (Date.now() < end);
    }, null, { timeout: 8000 });
    await sleep(50);
    const pending = c.exec(0, ({ io }) => {
      const t0 = Date.now();
      const settle = (p) =>
        p.then(
          () => ({ ok: true, ms: Date.now() - t0 }),
          (err) => ({ ok: false, message: err.message, ms: Date.now() - t0 }),
        );
      return Promise.all([
        settle(io.fetchSockets()),
        settle(io.serverSideEmitWithAck("who")),
        new Promise((resolve) =>
          io.timeout(2500).emit("ask", (err, responses) =>
            resolve({ message: err && err.message, responses, ms: Date.now() - t0 }),
          ),
        ),
      ]);
    }, null, { timeout: 10_000 });
    await sleep(150);
    await c.primaryExec(({ primaryHandle }) => primaryHandle.close());
    const [fetch, sse, ack] = await pending;
    await busy;
    for (const [name, r] of [["fetchSockets", fetch], ["serverSideEmit", sse]]) {
      assert.equal(r.ok, false, `${name} must fail`);
      assert.match(r.message, new RegExp(`${name} failed: .*hub`), r.message);
      assert.ok(r.ms < 1000, `${name} failed ${r.ms} ms after it was called (the hub went away after ~150 ms)`);
    }
    assert.equal(ack.message, "operation has timed out");
    assert.deepEqual(ack.responses, ["client-0"]);
    assert.ok(ack.ms >= 2400, `emitWithAck ended after ${ack.ms} ms`);
  });
});
