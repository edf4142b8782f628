"use strict";
// What the package tells the operator: warnings that a peer can trigger over
// and over are rate-limited, warnings a listener takes care of are not
// printed, and stats() says how the connection is.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, sleep } = require("./helpers/cluster");
const { oursOnly } = require("./helpers/adapter-module");

const T = { timeout: 20_000, skip: oursOnly("has no hub handle") };

it("20,000 refused connections print one warning line, not 20,000", T, async (t) => {
  const c = await clusterFor(t, { workers: 1 });
  // The hub's refusals reach the primary's handle as events (the hub itself
  // is exercised in hub-defences.test.js); this is what the primary prints for them.
  await c.primaryExec(({ primaryHandle }) => {
    for (let i = 0; i < 20_000; i++) primaryHandle._onHubEvent({ kind: "refused", reason: `garbage ${i}` });
  });
  await sleep(100);
  const lines = c.output().split("\n").filter((l) => /refused a connection/.test(l));
  assert.deepEqual(lines, ["socket.io-cluster-rs hub: refused a connection: garbage 0"]);
});

it("a dropped worker is not printed when a \"disconnected\" listener takes care of it", T, async (t) => {
  const c = await clusterFor(t, { workers: 1 });
  const heard = await c.primaryExec(({ primaryHandle }) => {
    let n = 0;
    primaryHandle.on("disconnected", () => n++);
    primaryHandle._onHubEvent({ kind: "disconnected", node: 9, pid: 4242, reason: "malformed frame header" });
    return n;
  });
  assert.equal(heard, 1);
  await sleep(100);
  assert.doesNotMatch(c.output(), /dropped worker pid 4242/);
  await c.primaryExec(({ primaryHandle }) => {
    primaryHandle.removeAllListeners("disconnected");
    primaryHandle._onHubEvent({ kind: "disconnected", node: 9, pid: 4243, reason: "malformed frame header" });
  });
  await sleep(100);
  assert.match(c.output(), /dropped worker pid 4243: malformed frame header/);
});

it("adapter.stats() says the connection is closed after io.close()", T, async (t) => {
  const c = await clusterFor(t, { workers: 2 });
  const r = await c.exec(0, ({ io }) => {
    const adapter = io.of("/").adapter;
    const before = adapter.stats().connected;
    io.close();
    return { before, after: adapter.stats().connected, error: adapter.stats().error };
  });
  assert.deepEqual(r, { before: true, after: false, error: "closed" });
});
