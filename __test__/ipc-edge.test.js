"use strict";
// Promises of the README that the ipc transport must keep too (they are not
// scoped to the native transport there), with real clusters under the stock
// primary and the default json IPC serialization:
//   - Differences 11: serverSideEmit() with an ack and no other worker calls back asynchronously;
//   - Failure behaviour: an ack or socket.data that cannot be sent is replaced by null
//     (the request does not time out); serverSideEmit() throws when its arguments cannot be sent;
//   - "setupPrimary() may run after cluster.fork()": workers started before it still join the cluster.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, received, run, waitFor, waitServerCount } = require("./helpers/ipc-cluster");

const J = JSON.stringify;

describe("ipc transport, a single worker", { timeout: 30_000 }, () => {
  let cluster;
  let ctl;
  before(async () => {
    cluster = await startCluster({ primary: "stock", workers: ["ours"] });
    ctl = await cluster.connect(cluster.url(cluster.workers[0], "/ctl"), { transports: ["websocket"] });
  });
  after(async () => {
    if (cluster) await cluster.stop();
  });

  it("serverSideEmit() with an ack and no other worker calls back asynchronously (README, difference 11)", async () => {
    assert.equal(cluster.workers[0].transport, "ipc");
    const res = await run(
      ctl,
      `let sync = true;
       const r = await new Promise((resolve) => {
         io.serverSideEmit("ping-srv", "alone", (err, answers) => resolve({ sync, err: err && err.message, answers }));
         sync = false;
       });
       return r;`,
    );
    assert.deepEqual(res, { sync: false, err: null, answers: [] });
  });
});

describe("ipc transport, json serialization: values JSON cannot carry", { timeout: 60_000 }, () => {
  let cluster;
  const ctl = [];
  const c = [];
  before(async () => {
    cluster = await startCluster({ primary: "stock", workers: ["ours", "ours"], adapterOptions: { requestsTimeout: 1500 } });
    for (const w of cluster.workers) {
      ctl.push(await cluster.connect(cluster.url(w, "/ctl"), { transports: ["websocket"] }));
      c.push(await cluster.connect(cluster.url(w), { transports: ["websocket"] }));
    }
    await waitServerCount(ctl, 2);
  });
  after(async () => {
    if (cluster) await cluster.stop();
  });

  for (const [label, expr] of [
    ["a BigInt", "({ big: 5n })"],
    ["a circular structure", "(() => { const o = { x: 1 }; o.self = o; return o; })()"],
  ]) {
    it(`fetchSockets(): socket.data holding ${label} does not make the request time out`, async () => {
      await run(ctl[1], `io.of("/").sockets.get(${J(c[1].id)}).data = ${expr};`);
      try {
        const res = await run(
          ctl[0],
          `const t = Date.now();
           const J = JSON.stringify;
           try {
             const s = await io.fetchSockets();
             const d = s.find((x) => x.id === ${J(c[1].id)}).data;
             const kind = d === null ? "null" : typeof d.big === "bigint" ? "bigint" : d.self === d ? "circular" : J(d);
             return { ids: s.map((x) => x.id).sort(), kind, ms: Date.now() - t };
           } catch (e) { return { error: e.message, ms: Date.now() - t }; }`,
        );
        assert.equal(res.error, undefined, `fetchSockets() failed: ${J(res)}`);
        assert.deepEqual(res.ids, c.map((s) => s.id).sort());
        // Carried intact, or the values that cannot be sent arrive as null (README).
        assert.ok(
          ["null", "bigint", "circular", J({ big: null }), J({ x: 1, self: null })].includes(res.kind),
          res.kind,
        );
      } finally {
        await run(ctl[1], `io.of("/").sockets.get(${J(c[1].id)}).data = {};`);
      }
    });
  }

  it("serverSideEmitWithAck(): an ack value holding a BigInt does not make the request time out", async () => {
    await run(ctl[1], `io.on("big-ack", (cb) => cb(7n));`);
    const res = await run(
      ctl[0],
      `try { return { answers: (await io.serverSideEmitWithAck("big-ack")).map(String) }; }
       catch (e) { return { error: e.message }; }`,
    );
    assert.equal(res.error, undefined, `serverSideEmitWithAck() failed: ${J(res)}`);
    assert.equal(res.answers.length, 1);
    assert.ok(["7", "null"].includes(res.answers[0]), J(res.answers));
  });

  for (const [label, args] of [
    ["a BigInt", `"sse-big", 10n`],
    ["a Buffer and a BigInt", `"sse-buf-big", Buffer.from([1]), 5n`],
    ["a circular structure", `"sse-circ", (() => { const o = {}; o.o = o; return o; })()`],
  ]) {
    it(`serverSideEmit() with ${label}: delivered, or the call throws; never silently lost`, async () => {
      const tag = args.split(",")[0].replace(/"/g, "");
      const threw = await run(ctl[0], `try { io.serverSideEmit("ping-srv", ${args}); return null; } catch (e) { return e.message; }`);
      if (threw !== null) return; // the caller was told (README: "throws synchronously")
      await run(ctl[0], `io.serverSideEmit("ping-srv", "sse-after-${tag}");`);
      await waitFor(async () => (await run(ctl[1], "return ctx.srvLog.map((a) => a[0]);")).includes(`sse-after-${tag}`), {
        message: "the following serverSideEmit",
      });
      const log = await run(ctl[1], "return ctx.srvLog.map((a) => a[0]);");
      assert.ok(log.includes(tag), `"${tag}" neither delivered nor reported to the caller; the other worker got ${J(log)}`);
    });
  }
});

describe("our setupPrimary() called after some workers created their adapters", { timeout: 60_000 }, () => {
  let cluster;
  const ctl = [];
  const c = [];
  before(async () => {
    cluster = await startCluster({
      primary: "ours",
      workers: ["ours", "ours", "ours"],
      lateSetup: { early: 2, delayMs: 1500 },
      adapterOptions: { heartbeatInterval: 500, heartbeatTimeout: 2000 },
    });
    for (const w of cluster.workers) {
      ctl.push(await cluster.connect(cluster.url(w, "/ctl"), { transports: ["websocket"] }));
      c.push(await cluster.connect(cluster.url(w), { transports: ["websocket"] }));
    }
  });
  after(async () => {
    if (cluster) await cluster.stop();
  });

  it("every worker ends up in one cluster: serverCount 3 and broadcasts reach all clients", async () => {
    const transports = cluster.workers.map((w) => w.transport);
    await waitServerCount(ctl, 3, "/", 6000).catch(async (err) => {
      const counts = [];
      for (const x of ctl) counts.push(await run(x, "return await io.of('/').adapter.serverCount();"));
      throw new Error(`${err.message}; transports ${J(transports)}, serverCount() ${J(counts)}`);
    });
    await run(ctl[2], `io.emit("b", "late-1");`);
    await waitFor(() => c.every((s) => received(s, "b").some(([t]) => t === "late-1")), { message: "late-1 everywhere" });
  });
});
