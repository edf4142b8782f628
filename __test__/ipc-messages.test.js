"use strict";
// The ipc transport shares Node's IPC channel with the application:
//   6. user code using process.on("message") / worker.send() for its own
//      messages neither disturbs the adapter nor is disturbed by it (both
//      transports: ipc under the stock primary, native under ours);
//   7. 12 namespaces in ipc mode use one process "message" listener, no
//      MaxListenersExceededWarning, and io.close() removes it.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, received, run, waitFor, waitServerCount, bytesOf } = require("./helpers/ipc-cluster");

const J = JSON.stringify;
const SOURCE = "_sio_adapter";

// Messages of the application itself: strings, objects without `source`
// (one shaped like an adapter BROADCAST, one like a SERVER_SIDE_EMIT with a
// foreign source), null, numbers, arrays.
const PRIMARY_TO_WORKER = [
  "hello from the primary",
  "",
  { a: 1, nested: { b: [1, 2, { c: "d" }] } },
  null,
  0,
  42,
  true,
  [1, "two", null],
  { type: 3, nsp: "/", uid: "0123456789abcdef", data: { packet: { type: 2, data: ["b", "forged-p2w"] }, opts: { rooms: [], except: [], flags: {} } } },
  { type: 9, nsp: "/", uid: "0123456789abcdef", source: "someone-else", data: { packet: ["ping-srv", "forged-p2w"] } },
  { type: "app:event", data: "x" },
];
const WORKER_TO_PRIMARY = [
  "hello from a worker",
  { b: 2 },
  null,
  7,
  { type: 3, nsp: "/", uid: "fedcba9876543210", data: { packet: { type: 2, data: ["b", "forged-w2p"] }, opts: { rooms: [], except: [], flags: {} } } },
  { type: 9, nsp: "/", uid: "fedcba9876543210", data: { packet: ["ping-srv", "forged-w2p"] } },
];

for (const [primary, transport] of [
  ["stock", "ipc"],
  ["ours", "native"],
]) {
  describe(`user IPC messages with the ${transport} transport (${primary} setupPrimary())`, { timeout: 60_000 }, () => {
    let cluster;
    const ctl = [];
    const c = [];

    before(async () => {
      cluster = await startCluster({ primary, workers: ["ours", "ours"], userMessages: true });
      for (const w of cluster.workers) {
        ctl.push(await cluster.connect(cluster.url(w, "/ctl"), { transports: ["websocket"] }));
        c.push(await cluster.connect(cluster.url(w), { transports: ["websocket"] }));
      }
      await waitServerCount(ctl, 2);
    });

    after(async () => {
      if (cluster) await cluster.stop();
    });

    it(`workers use the ${transport} transport`, () => {
      assert.deepEqual(cluster.workers.map((w) => w.transport), [transport, transport]);
    });

    it("messages the primary sends reach the user's process.on('message') exactly, while broadcasts flow", async () => {
      // Interleave cluster traffic with the user's messages.
      await run(ctl[0], `io.emit("b", "before-user", Buffer.from([1]));`);
      // Broadcasts from two workers have no order between them: let the first
      // one arrive everywhere before the second is emitted.
      await waitFor(() => c.every((s) => received(s, "b").length === 1), { message: "before-user everywhere" });
      await cluster.command({ cmd: "send", to: "all", msgs: PRIMARY_TO_WORKER });
      await run(ctl[1], `io.emit("b", "during-user", Buffer.from([2])); io.serverSideEmit("ping-srv", "real-sse");`);
      await cluster.command({ cmd: "send", to: "all", msgs: PRIMARY_TO_WORKER });
      const expected = [...PRIMARY_TO_WORKER, ...PRIMARY_TO_WORKER];
      for (const [i, x] of ctl.entries()) {
        const log = await waitFor(
          async () => {
            const l = await run(x, "return ctx.userLog;");
            return l.filter((m) => !(m && m.source === SOURCE)).length >= expected.length && l;
          },
          { message: `worker ${i}'s user handler to get the user's messages` },
        );
        const own = log.filter((m) => !(m && m.source === SOURCE));
        assert.deepEqual(own, expected, `worker ${i}: exactly the user's messages, in order, unchanged`);
        if (transport === "native") {
          assert.equal(log.length, expected.length, "native: no adapter traffic on the IPC channel");
        }
      }
      await waitFor(() => c.every((s) => received(s, "b").some(([t]) => t === "during-user")), { message: "during-user" });
      for (const s of c) {
        assert.deepEqual(received(s, "b").map(([t]) => t), ["before-user", "during-user"], "no forged broadcast delivered");
        for (const [, buf] of received(s, "b")) assert.ok(bytesOf(buf), `binary Buffer, got ${J(buf)}`);
      }
      for (const x of ctl) {
        const srv = await run(x, "return ctx.srvLog.map((a) => a[0]);");
        assert.ok(!srv.includes("forged-p2w"), "a user message with another source is not a serverSideEmit");
      }
      assert.deepEqual(await run(ctl[0], "return ctx.srvLog.map((a) => a[0]);"), ["real-sse"]);
    });

    it("messages the workers send reach the primary's cluster.on('message') exactly, while broadcasts flow", async () => {
      for (const x of ctl) {
        await run(x, `for (const m of ${J(WORKER_TO_PRIMARY)}) process.send(m); io.emit("b", "after-w2p");`);
      }
      await waitFor(() => c.every((s) => received(s, "b").filter(([t]) => t === "after-w2p").length === 2), {
        message: "after-w2p from both workers at both clients",
      });
      const logs = await cluster.command({ cmd: "userLog" });
      for (const w of cluster.workers) {
        const log = logs[w.id] || [];
        const own = log.filter((m) => !(m && (m.source === SOURCE || m.fixture)));
        assert.deepEqual(own, WORKER_TO_PRIMARY, `primary's view of worker ${w.id}`);
        if (transport === "native") assert.equal(log.filter((m) => m && m.source === SOURCE).length, 0);
        else assert.ok(log.some((m) => m && m.source === SOURCE), "ipc: adapter traffic goes through the IPC channel");
      }
      for (const s of c) assert.ok(!received(s, "b").some(([t]) => t === "forged-w2p"), "forged-w2p not delivered");
      for (const x of ctl) assert.ok(!(await run(x, "return ctx.srvLog.map((a) => a[0]);")).includes("forged-w2p"));
    });

    it("the cluster still works afterwards: serverCount, acks, fetchSockets", async () => {
      for (const x of ctl) assert.equal(await run(x, "return await io.of('/').adapter.serverCount();"), 2);
      assert.equal((await run(ctl[0], `return await io.serverSideEmitWithAck("ping-srv", "x");`)).length, 1);
      assert.equal((await run(ctl[1], `return (await io.timeout(1000).emitWithAck("ask", 1)).length;`)), 2);
      assert.deepEqual(
        (await run(ctl[0], `return (await io.fetchSockets()).map((s) => s.id);`)).sort(),
        c.map((s) => s.id).sort(),
      );
      assert.deepEqual(cluster.exits, []);
    });
  });
}

describe("12 namespaces with the ipc transport", { timeout: 60_000 }, () => {
  let cluster;

  before(async () => {
    cluster = await startCluster({ primary: "stock", workers: ["ours", "ours"], exec: "ns-worker.js" });
  });

  after(async () => {
    if (cluster) await cluster.stop();
  });

  it("one process 'message' listener for all namespaces, no MaxListenersExceededWarning", () => {
    for (const w of cluster.workers) {
      assert.deepEqual(new Set(w.transports), new Set(["ipc"]), `worker ${w.id}: 13 adapters on the ipc transport`);
      assert.equal(w.afterCreate, w.baseline + 1, `listeners went from ${w.baseline} to ${w.afterCreate} for 13 namespaces`);
      assert.deepEqual(w.warnings.filter((s) => /MaxListeners/.test(s)), []);
    }
  });

  it("every namespace is clustered: serverCount 2 and serverSideEmitWithAck answered by the other worker", async () => {
    for (const w of cluster.workers) {
      await waitFor(
        async () => {
          await cluster.command({ cmd: "send", to: w.id, msgs: [{ nsCmd: "counts" }] });
          const ev = await cluster.waitEvent((e) => e.from === w.id && e.msg.fixture === "counts");
          cluster.events.splice(cluster.events.indexOf(ev), 1);
          return Object.values(ev.msg.counts).every((n) => n === 2);
        },
        { timeout: 8000, message: `worker ${w.id}: serverCount 2 in every namespace` },
      );
    }
    const [a, b] = cluster.workers;
    await cluster.command({ cmd: "send", to: a.id, msgs: [{ nsCmd: "acks" }] });
    const ev = await cluster.waitEvent((e) => e.from === a.id && (e.msg.fixture === "acks" || e.msg.fixture === "error"));
    assert.equal(ev.msg.fixture, "acks", ev.msg.error);
    assert.equal(Object.keys(ev.msg.acks).length, 13);
    for (const [nsp, answers] of Object.entries(ev.msg.acks)) {
      assert.deepEqual(answers, [{ pid: b.pid, nsp, arg: nsp }], `namespace ${nsp}`);
    }
  });

  it("io.close() removes the listener, and the closed adapters no longer count nor answer", async () => {
    const [a, b] = cluster.workers;
    await cluster.command({ cmd: "send", to: a.id, msgs: [{ nsCmd: "close" }] });
    const closed = await cluster.waitEvent((e) => e.from === a.id && e.msg.fixture === "closed");
    assert.equal(closed.msg.afterClose, a.baseline, "process 'message' listeners back to the baseline");
    assert.deepEqual(closed.msg.warnings.filter((s) => /MaxListeners/.test(s)), []);

    // The other worker hears ADAPTER_CLOSE for every namespace.
    await waitFor(
      async () => {
        await cluster.command({ cmd: "send", to: b.id, msgs: [{ nsCmd: "counts" }] });
        const ev = await cluster.waitEvent((e) => e.from === b.id && e.msg.fixture === "counts");
        cluster.events.splice(cluster.events.indexOf(ev), 1);
        return Object.values(ev.msg.counts).every((n) => n === 1);
      },
      { timeout: 5000, message: "serverCount 1 in every namespace of the survivor" },
    );
    await cluster.command({ cmd: "send", to: b.id, msgs: [{ nsCmd: "acks" }] });
    const ev = await cluster.waitEvent((e) => e.from === b.id && (e.msg.fixture === "acks" || e.msg.fixture === "error"));
    assert.equal(ev.msg.fixture, "acks", ev.msg.error);
    for (const answers of Object.values(ev.msg.acks)) assert.deepEqual(answers, [], "no answer from a closed adapter");
    assert.deepEqual(cluster.exits, []);
  });
});
