"use strict";
// @socket.io/sticky in front of the cluster (setupMaster in the primary,
// setupWorker in the workers, advanced serialization as sticky requires),
// with our setupPrimary() (native transport) and with the stock one (ipc
// transport): long-polling-only clients and clients that upgrade to
// WebSocket both connect and receive broadcasts from every worker.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, received, run, waitFor, waitServerCount, bytesOf } = require("./helpers/ipc-cluster");

for (const [primary, transport] of [
  ["ours", "native"],
  ["stock", "ipc"],
]) {
  describe(`sticky in front, ${primary} setupPrimary(): ${transport} transport`, { timeout: 60_000 }, () => {
    let cluster;
    const clients = []; // { socket, mode: "polling" | "upgrade", worker }
    const ctlByWorker = new Map();

    before(async () => {
      cluster = await startCluster({ primary, workers: ["ours", "ours", "ours"], sticky: true, serialization: "advanced" });
      const url = `http://127.0.0.1:${cluster.stickyPort}`;
      for (let i = 0; i < 6; i++) {
        const mode = i % 2 === 0 ? "polling" : "upgrade";
        const socket = await cluster.connect(url, mode === "polling" ? { transports: ["polling"] } : {});
        const me = await socket.timeout(5000).emitWithAck("whoami");
        clients.push({ socket, mode, worker: me.id, transport: me.transport });
      }
      // One /ctl client per worker, multiplexed on a client's own connection
      // so that sticky routes it to the same worker.
      for (const cl of clients) {
        if (ctlByWorker.has(cl.worker)) continue;
        const ctl = cl.socket.io.socket("/ctl");
        cluster.clients.add(ctl);
        // (Manager#socket() connects it already: autoConnect.)
        if (!ctl.connected) {
          await new Promise((resolve, reject) => {
            ctl.once("connect", resolve);
            ctl.once("connect_error", reject);
          });
        }
        const me = await ctl.timeout(5000).emitWithAck("whoami");
        assert.equal(me.id, cl.worker, "the /ctl namespace shares the client's worker");
        ctlByWorker.set(cl.worker, ctl);
      }
    });

    after(async () => {
      if (cluster) await cluster.stop();
    });

    it(`workers use the ${transport} transport and clients of both kinds are spread over the 3 workers`, () => {
      assert.deepEqual(new Set(clients.map((c) => c.transport)), new Set([transport]));
      assert.equal(ctlByWorker.size, 3, `workers reached: ${JSON.stringify(clients.map((c) => c.worker))}`);
      for (const mode of ["polling", "upgrade"]) {
        const workers = new Set(clients.filter((c) => c.mode === mode).map((c) => c.worker));
        assert.ok(workers.size >= 2, `${mode} clients on ${workers.size} worker(s)`);
      }
    });

    it("upgrading clients end on WebSocket, polling-only clients stay on polling", async () => {
      await waitFor(
        () => clients.every((c) => c.socket.io.engine.transport.name === (c.mode === "polling" ? "polling" : "websocket")),
        { message: "transports settled" },
      );
    });

    it("serverCount() is 3 in every worker", async () => {
      await waitServerCount([...ctlByWorker.values()], 3);
    });

    it("a broadcast from each worker reaches every client, Buffers binary", async () => {
      for (const [worker, ctl] of ctlByWorker) {
        await run(ctl, `io.emit("b", "from-${worker}", Buffer.from([${worker}, 2]));`);
      }
      const tags = [...ctlByWorker.keys()].map((w) => `from-${w}`);
      await waitFor(() => clients.every((c) => tags.every((t) => received(c.socket, "b").some(([x]) => x === t))), {
        message: "every broadcast at every client",
      });
      for (const c of clients) {
        for (const [worker] of ctlByWorker) {
          const [, buf] = received(c.socket, "b").find(([x]) => x === `from-${worker}`);
          assert.deepEqual(bytesOf(buf), [worker, 2], `${c.mode} client on worker ${c.worker} from worker ${worker}`);
        }
      }
      // Still on their transports: the polling clients got them by long-polling.
      for (const c of clients) assert.equal(c.socket.io.engine.transport.name, c.mode === "polling" ? "polling" : "websocket");
    });

    it("cluster requests work: fetchSockets, serverSideEmitWithAck, emitWithAck", async () => {
      const ctl = ctlByWorker.get(clients[0].worker);
      const ids = await run(ctl, `return (await io.fetchSockets()).map((s) => s.id);`);
      assert.deepEqual(ids.sort(), clients.map((c) => c.socket.id).sort());
      const pids = await run(ctl, `return (await io.serverSideEmitWithAck("ping-srv", "s")).map((r) => r.pid);`);
      assert.equal(new Set(pids).size, 2);
      const acks = await run(ctl, `return (await io.timeout(2000).emitWithAck("ask", 3)).map((r) => r.id);`);
      assert.deepEqual(acks.sort(), clients.map((c) => c.socket.id).sort());
    });

    it("a polling client can send to the server and the reply broadcast crosses workers", async () => {
      const poller = clients.find((c) => c.mode === "polling");
      // The polling client's own message goes up as an HTTP POST through the sticky primary.
      const me = await poller.socket.timeout(5000).emitWithAck("whoami");
      assert.equal(me.id, poller.worker);
      await run(ctlByWorker.get(poller.worker), `io.except(${JSON.stringify(poller.socket.id)}).emit("b", "not-to-poller");`);
      await waitFor(() => clients.filter((c) => c !== poller).every((c) => received(c.socket, "b").some(([x]) => x === "not-to-poller")), {
        message: "not-to-poller at the others",
      });
      assert.ok(!received(poller.socket, "b").some(([x]) => x === "not-to-poller"));
      assert.deepEqual(cluster.exits, []);
    });
  });
}
