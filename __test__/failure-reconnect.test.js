"use strict";
// Losing the hub is not permanent: a worker whose connection drops retries
// with backoff for as long as its primary lives, announces its namespaces and
// rooms again, and says so in its stats and on stderr. Cluster operations
// made while it is down fail at once.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, waitFor, record, sleep } = require("./helpers/cluster");
const { oursOnly } = require("./helpers/adapter-module");

const T = { timeout: 40_000, skip: oursOnly("has no hub to lose") };

/** Closes the hub; with `restart`, starts a new one in the same primary. */
function closeHub(c, restart) {
  return c.primaryExec(
    ({ adapterModule, primaryHandle }, again) => {
      primaryHandle.close();
      return again ? adapterModule.setupPrimary().path : null;
    },
    restart,
  );
}

it("a hub closed and started again by setupPrimary() serves the same workers: 18 of 18 deliveries, rooms kept", T, async (t) => {
  const c = await clusterFor(t, { workers: 3 });
  const clients = [];
  for (let w = 0; w < 3; w++) for (let k = 0; k < 2; k++) clients.push(await c.connect(w));
  // A room with a member on worker 1 only, joined before the hub goes away.
  await c.exec(1, ({ socketOf }, id) => void socketOf(id).join("kept"), clients[2].id);

  await closeHub(c, false);
  // Down: cluster operations fail at once instead of waiting for a timeout.
  const t0 = Date.now();
  const failed = await c.exec(0, ({ io }) => io.fetchSockets().then(() => "resolved", (err) => err.message));
  assert.match(failed, /hub/);
  assert.ok(Date.now() - t0 < 1000, "failed fast");

  const address = await closeHub(c, true);
  assert.ok(address, "the new setupPrimary() started a hub");
  await waitFor(
    async () => (await c.execAll(({ io }) => io.of("/").adapter.stats())).every((s) => s.connected && s.reconnects === 1),
    10_000,
    "every worker to reconnect",
  );
  await c.waitForServerCount(3);

  const hello = record(clients, "hello");
  await c.execAll(({ io, index }) => void io.emit("hello", index));
  await waitFor(() => hello.calls.flat().length === 18, 3000, "18 deliveries");
  await sleep(100);
  assert.deepEqual(
    hello.calls.map((calls) => calls.map(([from]) => from).sort()),
    clients.map(() => [0, 1, 2]),
  );
  const kept = record(clients, "kept");
  await c.exec(0, ({ io }) => void io.to("kept").emit("kept", 1));
  await waitFor(() => kept.calls[2].length === 1, 3000, "the room broadcast after the restart");
  await sleep(100);
  assert.deepEqual(kept.calls.map((x) => x.length), [0, 0, 1, 0, 0, 0]);
  const out = c.output();
  assert.match(out, /lost the hub \(the hub closed the connection\)/);
  assert.match(out, /is connected to the hub again, after \d+ attempt/);
});

it("a worker keeps retrying while the hub is away, then comes back without help", T, async (t) => {
  const c = await clusterFor(t, { workers: 2 });
  await closeHub(c, false);
  // Several attempts fail meanwhile (backoff from 50 ms).
  await sleep(700);
  const down = await c.exec(0, ({ io }) => io.of("/").adapter.stats());
  assert.equal(down.connected, false);
  assert.match(String(down.error), /connect|closed/);
  await closeHub(c, true);
  await waitFor(
    async () => (await c.execAll(({ io }) => io.of("/").adapter.stats().connected)).every(Boolean),
    10_000,
    "both workers back",
  );
  await c.waitForServerCount(2);
  const out = c.output();
  assert.equal(out.match(/lost the hub/g).length, 2, "one warning per worker, not one per attempt");
});
