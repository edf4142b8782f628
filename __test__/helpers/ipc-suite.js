"use strict";
// The cluster behaviour checks shared by the ipc tests: 3 workers, each with
// one application client and one /ctl client, every operation started in one
// worker and observed through real clients or inside the other workers.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, received, run, waitFor, waitServerCount, bytesOf } = require("./ipc-cluster");

const J = JSON.stringify;

/** `value` is the Buffer `bytes` as the clients see it under `mode`. */
function assertBuffer(value, bytes, mode, where) {
  if (mode === "binary") {
    assert.deepEqual(bytesOf(value), bytes, `${where}: expected binary ${J(bytes)}, got ${J(value)}`);
  } else {
    // Stock cluster adapter with json IPC serialization: Buffer#toJSON() shape.
    assert.deepEqual(value, { type: "Buffer", data: bytes }, `${where}: expected the stock json shape, got ${J(value)}`);
  }
}

/**
 * @param title   suite title
 * @param cfg     fixture cluster configuration (see primary.js)
 * @param expect  {transport, adapterClass, remoteBuffer: "binary" | "stock-json"}
 */
function clusterSuite(title, cfg, expect) {
  describe(title, { timeout: 90_000 }, () => {
    let cluster;
    let ctl = [];
    let c = [];
    let syncN = 0;

    before(async () => {
      cluster = await startCluster(cfg);
      for (const w of cluster.workers) {
        ctl.push(await cluster.connect(cluster.url(w, "/ctl"), { transports: ["websocket"] }));
        c.push(await cluster.connect(cluster.url(w), { transports: ["websocket"], auth: { tag: `c${c.length}` } }));
      }
      await waitServerCount(ctl, 3);
    });

    after(async () => {
      if (cluster) await cluster.stop();
    });

    /** Emits a marker to all from worker `from` and waits until `clients` got it. */
    async function sync(from, clients = c) {
      const token = `sync-${++syncN}`;
      await run(ctl[from], `io.emit("sync", ${J(token)});`);
      await waitFor(() => clients.every((s) => received(s, "sync").some(([t]) => t === token)), {
        message: `every client to receive ${token}`,
      });
    }

    const got = (s, event, tag) => received(s, event).filter(([t]) => t === tag);

    it("each worker runs the expected adapter and transport", () => {
      for (const w of cluster.workers) {
        assert.equal(w.transport, expect.transport, `worker ${w.id} (${w.kind}) transport`);
        assert.equal(w.adapterClass, expect.adapterClass, `worker ${w.id} adapter class`);
      }
    });

    it("serverCount() is 3 in every worker", async () => {
      for (const x of ctl) assert.equal(await run(x, "return await io.of('/').adapter.serverCount();"), 3);
    });

    it("broadcast to all reaches every client; Buffers arrive as documented", async () => {
      await run(ctl[0], `io.emit("b", "all-1", Buffer.from([1, 2, 3]), { n: 1 });`);
      await waitFor(() => c.every((s) => got(s, "b", "all-1").length === 1), { message: "all-1 at every client" });
      for (const [i, s] of c.entries()) {
        const [[, buf, obj]] = got(s, "b", "all-1");
        assertBuffer(buf, [1, 2, 3], i === 0 ? "binary" : expect.remoteBuffer, `client of worker ${i}`);
        assert.deepEqual(obj, { n: 1 });
      }
    });

    it("room, except and local broadcasts reach exactly their targets", async () => {
      await run(ctl[1], `io.of("/").sockets.get(${J(c[1].id)}).join("r1");`);
      await run(
        ctl[0],
        `io.to("r1").emit("b", "room-1");
         io.except("r1").emit("b", "except-1");
         io.local.emit("b", "local-1");
         io.to("r1").to(${J(c[2].id)}).emit("b", "two-rooms-1");`,
      );
      await sync(0);
      const who = (tag) => c.map((s) => got(s, "b", tag).length);
      assert.deepEqual(who("room-1"), [0, 1, 0], "to(room)");
      assert.deepEqual(who("except-1"), [1, 0, 1], "except(room)");
      assert.deepEqual(who("local-1"), [1, 0, 0], "local");
      assert.deepEqual(who("two-rooms-1"), [0, 1, 1], "to(room).to(socket id of another worker)");
    });

    it("a volatile broadcast reaches idle clients of every worker", async () => {
      // Emitted alone: socket.io drops a volatile packet for a client whose
      // transport is still busy writing, so the clients must be idle.
      await sync(2);
      await run(ctl[2], `io.volatile.emit("b", "volatile-1", Buffer.from([4]));`);
      await waitFor(() => c.every((s) => got(s, "b", "volatile-1").length === 1), { message: "volatile-1 at every client" });
      for (const [i, s] of c.entries()) {
        assertBuffer(got(s, "b", "volatile-1")[0][1], [4], i === 2 ? "binary" : expect.remoteBuffer, `client of worker ${i}`);
      }
    });

    it("socket.broadcast from one worker excludes only the sender", async () => {
      await run(ctl[1], `io.of("/").sockets.get(${J(c[1].id)}).broadcast.emit("b", "sbcast-1");`);
      await sync(1);
      assert.deepEqual(c.map((s) => got(s, "b", "sbcast-1").length), [1, 0, 1]);
    });

    it("socketsJoin / socketsLeave act on sockets of other workers", async () => {
      await run(ctl[0], `io.in(${J(c[2].id)}).socketsJoin(["j1", "j2"]);`);
      await waitFor(
        async () => J(await run(ctl[2], `return [...io.of("/").sockets.get(${J(c[2].id)}).rooms].sort();`)) === J([c[2].id, "j1", "j2"].sort()),
        { message: "c2 in j1 and j2 on worker 2" },
      );
      await run(ctl[1], `io.to("j1").emit("b", "j1-1");`);
      await sync(1);
      assert.deepEqual(c.map((s) => got(s, "b", "j1-1").length), [0, 0, 1]);

      await run(ctl[0], `io.in("j1").socketsLeave("j1");`);
      await waitFor(
        async () => J(await run(ctl[2], `return [...io.of("/").sockets.get(${J(c[2].id)}).rooms].sort();`)) === J([c[2].id, "j2"].sort()),
        { message: "c2 out of j1, still in j2" },
      );

      await run(ctl[1], `io.socketsJoin("everyone");`);
      for (const [i, x] of ctl.entries()) {
        await waitFor(async () => await run(x, `return io.of("/").sockets.get(${J(c[i].id)}).rooms.has("everyone");`), {
          message: `c${i} in "everyone"`,
        });
      }
    });

    it("fetchSockets() returns every socket with id, rooms, data and handshake", async () => {
      const list = await run(
        ctl[0],
        `return (await io.fetchSockets()).map((s) => ({
           id: s.id, rooms: [...s.rooms].sort(), data: s.data, tag: s.handshake.auth.tag, remote: !s.server,
         }));`,
      );
      assert.equal(list.length, 3);
      const byId = new Map(list.map((s) => [s.id, s]));
      for (const [i, w] of cluster.workers.entries()) {
        const s = byId.get(c[i].id);
        assert.ok(s, `socket of worker ${i} missing`);
        assert.deepEqual(s.data, { pid: w.pid, worker: w.id, tag: `c${i}` });
        assert.equal(s.tag, `c${i}`);
        assert.equal(s.remote, i !== 0);
        assert.ok(s.rooms.includes(c[i].id) && s.rooms.includes("everyone"), J(s.rooms));
      }
      const inRoom = await run(ctl[0], `return (await io.in("j2").fetchSockets()).map((s) => s.id);`);
      assert.deepEqual(inRoom, [c[2].id]);
    });

    it("RemoteSocket emit, join, leave and data work across workers", async () => {
      await run(
        ctl[0],
        `const [s] = await io.in(${J(c[1].id)}).fetchSockets();
         if (!s || s.server) throw new Error("expected a RemoteSocket");
         s.emit("direct", "rs-1", Buffer.from([9, 8]));
         s.join(["rs-a", "rs-b"]);
         s.leave("rs-a");`,
      );
      await waitFor(() => got(c[1], "direct", "rs-1").length === 1, { message: "direct emit at c1" });
      assertBuffer(got(c[1], "direct", "rs-1")[0][1], [9, 8], expect.remoteBuffer, "RemoteSocket.emit Buffer");
      assert.equal(got(c[0], "direct", "rs-1").length + got(c[2], "direct", "rs-1").length, 0);
      await waitFor(
        async () => {
          const rooms = await run(ctl[1], `return [...io.of("/").sockets.get(${J(c[1].id)}).rooms];`);
          return rooms.includes("rs-b") && !rooms.includes("rs-a");
        },
        { message: "c1 in rs-b and not in rs-a" },
      );
      const data = await run(ctl[2], `return (await io.in(${J(c[1].id)}).fetchSockets())[0].data;`);
      assert.deepEqual(data, { pid: cluster.workers[1].pid, worker: cluster.workers[1].id, tag: "c1" });
    });

    it("serverSideEmit() without ack reaches the other workers only", async () => {
      await run(ctl[0], `io.serverSideEmit("ping-srv", "no-ack-1", 1, { a: [2] });`);
      for (const i of [1, 2]) {
        await waitFor(
          async () => (await run(ctl[i], "return ctx.srvLog;")).some((a) => J(a) === J(["no-ack-1", 1, { a: [2] }])),
          { message: `worker ${i} to get no-ack-1` },
        );
      }
      const own = await run(ctl[0], "return ctx.srvLog;");
      assert.equal(own.filter((a) => a[0] === "no-ack-1").length, 0, "the sender does not receive its own serverSideEmit");
    });

    it("serverSideEmit() with acks collects one answer per other worker", async () => {
      const res = await run(ctl[0], `return await io.serverSideEmitWithAck("ping-srv", "with-ack-1");`);
      assert.deepEqual(
        res.map((r) => r.pid).sort(),
        [cluster.workers[1].pid, cluster.workers[2].pid].sort(),
      );
      for (const r of res) assert.deepEqual(r.args, ["with-ack-1"]);
      const cb = await run(
        ctl[2],
        `return await new Promise((resolve) =>
           io.serverSideEmit("ping-srv", "cb-1", (err, r) => resolve({ err: err && err.message, n: r.length })));`,
      );
      assert.deepEqual(cb, { err: null, n: 2 });
    });

    it("broadcast with acks (io.timeout(1000).emitWithAck) collects every client's answer", async () => {
      const res = await run(
        ctl[0],
        `const r = await io.timeout(1000).emitWithAck("ask", 7);
         return r.map((x) => ({ id: x.id, n: x.n, binary: Buffer.isBuffer(x.buf) }));`,
      );
      assert.deepEqual(res.map((r) => r.id).sort(), c.map((s) => s.id).sort());
      for (const r of res) assert.equal(r.n, 7);
      if (expect.remoteBuffer === "binary") assert.ok(res.every((r) => r.binary), `ack Buffers: ${J(res)}`);
      const room = await run(ctl[2], `return (await io.to("r1").timeout(1000).emitWithAck("ask", 3)).map((x) => x.id);`);
      assert.deepEqual(room, [c[1].id]);
    });

    it("disconnectSockets() and RemoteSocket.disconnect() close sockets of other workers", async () => {
      const t1 = await cluster.connect(cluster.url(cluster.workers[1]), { transports: ["websocket"], auth: { tag: "t1" } });
      const t2 = await cluster.connect(cluster.url(cluster.workers[2]), { transports: ["websocket"], auth: { tag: "t2" } });
      const t3 = await cluster.connect(cluster.url(cluster.workers[2]), { transports: ["websocket"], auth: { tag: "t3" } });
      await run(ctl[0], `io.in([${J(t1.id)}, ${J(t2.id)}]).socketsJoin("tmp");`);
      await waitFor(async () => (await run(ctl[0], `return (await io.in("tmp").fetchSockets()).length;`)) === 2, {
        message: "t1 and t2 in tmp",
      });
      await run(ctl[0], `io.in("tmp").disconnectSockets();`);
      await waitFor(() => t1.disconnectReason && t2.disconnectReason, { message: "t1 and t2 disconnected" });
      assert.equal(t1.disconnectReason, "io server disconnect");
      assert.equal(t2.disconnectReason, "io server disconnect");

      await run(ctl[1], `const [s] = await io.in(${J(t3.id)}).fetchSockets(); s.disconnect();`);
      await waitFor(() => t3.disconnectReason, { message: "t3 disconnected" });
      assert.equal(t3.disconnectReason, "io server disconnect");

      await sync(0);
      assert.ok(c.every((s) => s.connected), "the other clients stay connected");
      const ids = await run(ctl[1], `return (await io.fetchSockets()).map((s) => s.id).sort();`);
      assert.deepEqual(ids, c.map((s) => s.id).sort());
    });

    it("no worker exited and serverCount() is still 3", async () => {
      for (const x of ctl) assert.equal(await run(x, "return await io.of('/').adapter.serverCount();"), 3);
      assert.deepEqual(cluster.exits, []);
      assert.doesNotMatch(cluster.output, /ERR_IPC_CHANNEL_CLOSED|EPIPE|Unhandled|uncaught/i);
    });
  });
}

module.exports = { clusterSuite, assertBuffer };
