"use strict";
// A worker that goes away while requests wait for it, other than by SIGKILL
// (failure-worker-killed.test.js): an uncaught exception, process.exit(), io.close(), and
// io.close() followed by cluster.worker.disconnect(). Pending fetchSockets(),
// serverSideEmitWithAck() and emitWithAck() broadcasts must complete with the
// survivors' answers at once, not after requestsTimeout (5 s here).

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, sleep } = require("./helpers/cluster");

const T = { timeout: 20_000 };
// Settling must come from the departure, far below the 5 s request timeout.
const SETTLE_BOUND_MS = 500;

// What worker 2 does once its event loop has been busy for `busyMs` (long
// enough for worker 0's request to be waiting for it). Source text: runs in
// the worker; returns when it ends its participation in the cluster.
const FAILURES = {
  "an uncaught exception": `process.nextTick(() => { throw new Error("boom"); });`,
  "process.exit(1)": `process.exit(1);`,
  "io.close()": `io.close();`,
  "io.close() and cluster.worker.disconnect()": `io.close(); cluster.worker.disconnect();`,
};

// The requests worker 0 makes; each resolves with what the survivors answered.
const REQUESTS = {
  "fetchSockets()": async ({ io }) => (await io.fetchSockets()).map((s) => s.id).sort(),
  "serverSideEmitWithAck()": async ({ io }) => (await io.serverSideEmitWithAck("who")).sort(),
  "emitWithAck() to every client": async ({ io }) => (await io.timeout(5000).emitWithAck("ask")).sort(),
};

async function run(t, failure, request) {
  const c = await clusterFor(t, { workers: 3, adapterOpts: { requestsTimeout: 5000 } });
  const clients = await c.connectAll();
  clients.forEach((s, i) => s.on("ask", (cb) => cb(`client-${i}`)));
  await c.execAll(({ io }) => io.on("who", (cb) => cb(process.pid)));

  // Worker 2: busy, then fails (a new Function so the failure is plain code).
  const failing = c
    .exec(
      2,
      ({ io, cluster }, a) => {
        const end = Date.now() + a.busyMs;
        while (Date.now() < end);
        new Function("io", "cluster", a.code)(io, cluster);
        return Date.now();
      },
      { busyMs: 400, code: FAILURES[failure] },
      { timeout: 10_000 },
    )
    .then(
      (t) => ({ failedAt: t }),
      () => ({ failedAt: null }), // the process died before answering
    );
  await sleep(100); // worker 2 is inside its busy loop
  const result = await c.exec(
    0,
    async (ctx, src) => {
      const fn = new Function(`return (${src})`)();
      const value = await fn(ctx);
      return { value, settledAt: Date.now() };
    },
    REQUESTS[request].toString(),
    { timeout: 10_000 },
  );
  const { failedAt: closedAt } = await failing;
  // When worker 2 died, the primary's exit report says when; when it only
  // closed, its own answer does.
  let failedAt = closedAt;
  if (failedAt === null) failedAt = (await c.waitExit(2)).t;
  return { c, clients, result, settleMs: result.settledAt - failedAt };
}

for (const failure of Object.keys(FAILURES)) {
  describe(`worker 2: ${failure} while requests wait for it`, () => {
    for (const request of Object.keys(REQUESTS)) {
      it(`${request} completes with the survivors' answers at once`, T, async (t) => {
        const { c, clients, result, settleMs } = await run(t, failure, request);
        t.diagnostic(`settled ${settleMs} ms after worker 2 went away`);
        const expected = {
          "fetchSockets()": [clients[0].id, clients[1].id].sort(),
          "serverSideEmitWithAck()": [c.workers[1].pid],
          "emitWithAck() to every client": ["client-0", "client-1"],
        }[request];
        assert.deepEqual(result.value, expected);
        assert.ok(settleMs < SETTLE_BOUND_MS, `settled ${settleMs} ms after the failure`);
        // serverCount() follows.
        await c.waitForServerCount(2, { workers: [0, 1], timeout: 2000 });
      });
    }
  });
}
