"use strict";
// The ipc transport (stock 0.3.0 wire protocol over process.send) with real
// forked clusters and real socket.io-client connections:
//   1. the stock setupPrimary() with our workers
//   2. our setupPrimary() with stock workers
//   3. a mixed cluster: stock primary, two of our workers and one stock worker

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { clusterSuite, assertBuffer } = require("./helpers/ipc-suite");
const { startCluster, received, run, waitFor, waitServerCount } = require("./helpers/ipc-cluster");

const J = JSON.stringify;

clusterSuite(
  "stock setupPrimary() + 3 of our workers (json serialization): transport ipc",
  { primary: "stock", workers: ["ours", "ours", "ours"] },
  { transport: "ipc", adapterClass: "IpcClusterAdapter", remoteBuffer: "binary" },
);

clusterSuite(
  "our setupPrimary() + 3 stock workers (json serialization): relayed as 0.3.0 does",
  { primary: "ours", workers: ["stock", "stock", "stock"] },
  { transport: null, adapterClass: "NodeClusterAdapter", remoteBuffer: "stock-json" },
);

clusterSuite(
  "our setupPrimary() + 3 stock workers (advanced serialization): Buffers binary",
  { primary: "ours", workers: ["stock", "stock", "stock"], serialization: "advanced" },
  { transport: null, adapterClass: "NodeClusterAdapter", remoteBuffer: "binary" },
);

describe("stock setupPrimary() + 2 of our workers + 1 stock worker (json serialization)", { timeout: 60_000 }, () => {
  let cluster;
  const ctl = [];
  const c = [];
  let syncN = 0;

  before(async () => {
    cluster = await startCluster({ primary: "stock", workers: ["ours", "ours", "stock"] });
    for (const w of cluster.workers) {
      ctl.push(await cluster.connect(cluster.url(w, "/ctl"), { transports: ["websocket"] }));
      c.push(await cluster.connect(cluster.url(w), { transports: ["websocket"], auth: { tag: `c${c.length}` } }));
    }
    await waitServerCount(ctl, 3);
  });

  after(async () => {
    if (cluster) await cluster.stop();
  });

  const got = (s, event, tag) => received(s, event).filter(([t]) => t === tag);
  async function sync(from) {
    const token = `sync-${++syncN}`;
    await run(ctl[from], `io.emit("sync", ${J(token)});`);
    await waitFor(() => c.every((s) => received(s, "sync").some(([t]) => t === token)), { message: token });
  }

  it("our workers use the ipc transport, the stock worker the stock adapter", () => {
    assert.deepEqual(
      cluster.workers.map((w) => [w.kind, w.transport, w.adapterClass]),
      [
        ["ours", "ipc", "IpcClusterAdapter"],
        ["ours", "ipc", "IpcClusterAdapter"],
        ["stock", null, "NodeClusterAdapter"],
      ],
    );
  });

  it("a Buffer broadcast by one of our workers is binary at our other worker, stock-shaped at the stock worker", async () => {
    await run(ctl[0], `io.emit("b", "mixed-1", Buffer.from([5, 6, 7]), "after");`);
    await waitFor(() => c.every((s) => got(s, "b", "mixed-1").length === 1), { message: "mixed-1 at every client" });
    assertBuffer(got(c[0], "b", "mixed-1")[0][1], [5, 6, 7], "binary", "local client");
    assertBuffer(got(c[1], "b", "mixed-1")[0][1], [5, 6, 7], "binary", "client of our other worker");
    // The stock worker reads the ordinary `data` and ignores our extra field.
    assert.deepEqual(got(c[2], "b", "mixed-1")[0], ["mixed-1", { type: "Buffer", data: [5, 6, 7] }, "after"]);
  });

  it("broadcasts from the stock worker reach our workers' clients (stock shape, as 0.3.0 delivers)", async () => {
    await run(ctl[2], `io.emit("b", "from-stock-1", Buffer.from([1]), { k: "v" }); io.to(${J(c[0].id)}).emit("b", "from-stock-2");`);
    await waitFor(() => c.every((s) => got(s, "b", "from-stock-1").length === 1), { message: "from-stock-1 everywhere" });
    assert.deepEqual(got(c[0], "b", "from-stock-1")[0], ["from-stock-1", { type: "Buffer", data: [1] }, { k: "v" }]);
    assert.deepEqual(got(c[1], "b", "from-stock-1")[0], ["from-stock-1", { type: "Buffer", data: [1] }, { k: "v" }]);
    await sync(2);
    assert.deepEqual(c.map((s) => got(s, "b", "from-stock-2").length), [1, 0, 0]);
  });

  it("serverCount() is 3 everywhere and fetchSockets() returns all sockets from either kind of worker", async () => {
    for (const x of ctl) assert.equal(await run(x, "return await io.of('/').adapter.serverCount();"), 3);
    for (const x of [ctl[0], ctl[2]]) {
      const list = await run(x, "return (await io.fetchSockets()).map((s) => ({ id: s.id, data: s.data }));");
      assert.deepEqual(list.map((s) => s.id).sort(), c.map((s) => s.id).sort());
      for (const [i, w] of cluster.workers.entries()) {
        assert.deepEqual(list.find((s) => s.id === c[i].id).data, { pid: w.pid, worker: w.id, tag: `c${i}` });
      }
    }
  });

  it("serverSideEmit: Buffers binary between our workers, stock shape at the stock worker; acks from both kinds", async () => {
    await run(ctl[0], `io.serverSideEmit("ping-srv", "sse-buf-1", Buffer.from([7, 8]));`);
    await waitFor(async () => (await run(ctl[1], "return ctx.srvLog.length;")) > 0, { message: "worker 1 srvLog" });
    await waitFor(async () => (await run(ctl[2], "return ctx.srvLog.length;")) > 0, { message: "worker 2 srvLog" });
    assert.equal(
      await run(ctl[1], `const a = ctx.srvLog.find((x) => x[0] === "sse-buf-1"); return Buffer.isBuffer(a[1]) && [...a[1]].join();`),
      "7,8",
    );
    assert.deepEqual(
      await run(ctl[2], `return ctx.srvLog.find((x) => x[0] === "sse-buf-1")[1];`),
      { type: "Buffer", data: [7, 8] },
    );
    for (const from of [0, 2]) {
      const res = await run(ctl[from], `return (await io.serverSideEmitWithAck("ping-srv", "ack-${from}")).map((r) => r.pid);`);
      assert.deepEqual(res.sort(), cluster.workers.filter((_, i) => i !== from).map((w) => w.pid).sort());
    }
  });

  it("broadcasts with acks and room operations work from both kinds of worker", async () => {
    for (const from of [0, 2]) {
      const ids = await run(ctl[from], `return (await io.timeout(1000).emitWithAck("ask", 1)).map((x) => x.id);`);
      assert.deepEqual(ids.sort(), c.map((s) => s.id).sort(), `emitWithAck from worker ${from}`);
    }
    await run(ctl[2], `io.in(${J(c[0].id)}).socketsJoin("from-stock-room");`);
    await waitFor(async () => await run(ctl[0], `return io.of("/").sockets.get(${J(c[0].id)}).rooms.has("from-stock-room");`), {
      message: "c0 joined by the stock worker",
    });
    await run(ctl[1], `io.in(${J(c[2].id)}).socketsJoin("from-ours-room");`);
    await waitFor(async () => await run(ctl[2], `return io.of("/").sockets.get(${J(c[2].id)}).rooms.has("from-ours-room");`), {
      message: "c2 joined by our worker",
    });
    await run(ctl[0], `io.to("from-ours-room").emit("b", "to-stock-room");`);
    await sync(0);
    assert.deepEqual(c.map((s) => got(s, "b", "to-stock-room").length), [0, 0, 1]);
  });

  it("no worker exited", () => {
    assert.deepEqual(cluster.exits, []);
    assert.doesNotMatch(cluster.output, /ERR_IPC_CHANNEL_CLOSED|EPIPE|Unhandled|uncaught/i);
  });
});
