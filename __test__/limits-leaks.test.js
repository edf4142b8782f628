"use strict";
// Repetition leaves nothing behind: 10,000 fetchSockets() calls, 1,000
// namespaces created and closed, 100 worker restarts. Each test compares a
// measurement taken after a warm-up with one taken at the end (heap after a
// full GC, RSS, listener counts, the hub's own tables): it asserts a trend,
// not a timing.

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { clusterFor } = require("./helpers/cluster");

/** Installed in a worker: state.measure() → heap after a full GC, RSS, listener counts. */
function installMeasure({ io, state, require }) {
  const v8 = require("node:v8");
  const vm = require("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc");
  state.measure = () => {
    gc();
    gc();
    const adapter = io.of("/").adapter;
    return {
      heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
      rssMiB: process.memoryUsage().rss / 2 ** 20,
      processMessageListeners: process.listenerCount("message"),
      adapterListeners: adapter.eventNames().reduce((n, e) => n + adapter.listenerCount(e), 0),
      stats: adapter.stats(),
    };
  };
}

function rssMiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
}

describe("no leaks", () => {
  it("10,000 fetchSockets() calls (after 10,000 to warm up)", { timeout: 120_000 }, async (t) => {
    const c = await clusterFor(t, { workers: 3 });
    await c.connectAll();
    await c.exec(0, installMeasure);
    const batch = ({ io }, n) =>
      (async () => {
        for (let i = 0; i < n; i += 100) {
          const all = await Promise.all(Array.from({ length: 100 }, () => io.fetchSockets()));
          if (all.some((s) => s.length !== 3)) throw new Error("a fetchSockets() answer was incomplete");
        }
      })();
    // Warm-up: V8's young generation and malloc's arenas grow to their working
    // size over the first few thousand calls (RSS then stays flat: measured
    // flat within ±5 MiB from 10,000 to 60,000 calls).
    await c.exec(0, batch, 10_000, { timeout: 60_000 });
    const before = await c.exec(0, ({ state }) => state.measure());
    await c.exec(0, batch, 10_000, { timeout: 90_000 });
    const after = await c.exec(0, ({ state }) => state.measure());
    t.diagnostic(`heap ${before.heapMiB.toFixed(1)} → ${after.heapMiB.toFixed(1)} MiB, rss ${before.rssMiB.toFixed(1)} → ${after.rssMiB.toFixed(1)} MiB`);
    assert.ok(after.heapMiB - before.heapMiB < 2, `heap grew by ${(after.heapMiB - before.heapMiB).toFixed(2)} MiB over 10,000 calls`);
    assert.ok(after.rssMiB - before.rssMiB < 12, `RSS grew by ${(after.rssMiB - before.rssMiB).toFixed(1)} MiB over 10,000 calls`);
    assert.equal(after.processMessageListeners, before.processMessageListeners);
    assert.equal(after.adapterListeners, before.adapterListeners);
    assert.equal(after.stats.pendingRequests, 0);
    const hub = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats());
    assert.equal(hub.pendingRequests, 0, "the hub holds no finished request");
  });

  it("1,000 namespaces created and closed", { timeout: 120_000 }, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    await c.exec(0, installMeasure);
    const cycles = ({ io }, a) =>
      (async () => {
        for (let i = a.from; i < a.to; i++) {
          const name = `/tmp-${i}`;
          const nsp = io.of(name);
          if (i % 100 === 0) {
            // The namespace exists on this worker only: counted once.
            const n = await nsp.adapter.serverCount();
            if (n !== 1) throw new Error(`serverCount() of ${name} is ${n}`);
          }
          // How socket.io itself drops a namespace (cleanupEmptyChildNamespaces).
          nsp.adapter.close();
          io._nsps.delete(name);
        }
      })();
    await c.exec(0, cycles, { from: 0, to: 200 }, { timeout: 60_000 });
    const before = await c.exec(0, ({ state }) => state.measure());
    await c.exec(0, cycles, { from: 200, to: 1000 }, { timeout: 90_000 });
    const after = await c.exec(0, ({ state }) => state.measure());
    t.diagnostic(`heap ${before.heapMiB.toFixed(1)} → ${after.heapMiB.toFixed(1)} MiB`);
    assert.ok(after.heapMiB - before.heapMiB < 2, `heap grew by ${(after.heapMiB - before.heapMiB).toFixed(2)} MiB over 800 cycles`);
    assert.equal(after.processMessageListeners, before.processMessageListeners);
    assert.deepEqual(after.stats.namespaces, ["/"], "the link forgot every closed namespace");
    const peers = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats().peers);
    for (const p of peers) assert.deepEqual(p.namespaces, ["/"], `hub's namespaces of pid ${p.pid}`);
    // The cluster still works.
    await c.waitForServerCount(2);
  });

  it("100 worker restarts", { timeout: 240_000 }, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    const primaryPid = c.child.pid;
    let victim = 1;
    const restart = async () => {
      await c.kill(victim, "SIGKILL");
      victim = await c.fork();
    };
    for (let i = 0; i < 10; i++) await restart();
    await c.waitForServerCount(2, { workers: [0, victim] });
    const before = rssMiB(primaryPid);
    for (let i = 10; i < 100; i++) await restart();
    await c.waitForServerCount(2, { workers: [0, victim] });
    const after = rssMiB(primaryPid);
    t.diagnostic(`primary RSS ${before.toFixed(1)} → ${after.toFixed(1)} MiB over 90 restarts`);
    assert.ok(after - before < 10, `primary RSS grew by ${(after - before).toFixed(1)} MiB over 90 restarts`);
    const hub = await c.primaryExec(({ primaryHandle }) => primaryHandle.stats());
    assert.equal(hub.peers.length, 2, "the hub lists the two live workers only");
    assert.equal(hub.pendingRequests, 0);
  });
});
