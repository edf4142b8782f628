"use strict";
// Debug logs: users of @socket.io/cluster-adapter have DEBUG=socket.io-cluster-adapter
// in their environment, and that filter must keep showing the adapter's logs;
// this package's own namespaces (socket.io-cluster-rs*) show them too, each
// line once.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, waitFor, isStock } = require("./helpers/cluster");

const T = { timeout: 20_000 };

/** Output lines of the cluster that debug printed under `namespace`. */
function linesOf(c, namespace) {
  return c
    .output()
    .split("\n")
    .filter((l) => l.includes(` ${namespace} `));
}

it("DEBUG=socket.io-cluster-adapter (the stock package's namespace) shows the adapter's logs", T, async (t) => {
  const c = await clusterFor(t, { workers: 2, env: { DEBUG: "socket.io-cluster-adapter" } });
  await c.connectAll();
  await c.exec(0, ({ io }) => io.fetchSockets().then((s) => s.length));
  const lines = await waitFor(() => {
    const l = linesOf(c, "socket.io-cluster-adapter");
    return l.length > 0 && l;
  }, 3000, "a debug line under socket.io-cluster-adapter");
  if (!isStock) assert.ok(lines.some((l) => /using the native hub/.test(l)), lines.join("\n"));
});

it("DEBUG=socket.io-cluster-rs* shows the same logs under this package's namespaces, each once", { ...T, skip: isStock && "stock @socket.io/cluster-adapter: has only its own namespace" }, async (t) => {
  const c = await clusterFor(t, { workers: 2, env: { DEBUG: "socket.io-cluster-rs*,socket.io-cluster-adapter" } });
  await c.connectAll();
  const lines = await waitFor(() => {
    const l = linesOf(c, "socket.io-cluster-rs");
    return l.some((x) => /using the native hub/.test(x)) && l;
  }, 3000, "the transport line under socket.io-cluster-rs");
  assert.equal(lines.filter((l) => /using the native hub/.test(l)).length, 2, "one line per worker");
  assert.equal(linesOf(c, "socket.io-cluster-adapter").length, 0, "not repeated under the stock namespace");
});

it("DEBUG=socket.io-cluster-rs:hub shows the hub's own log: workers connecting and dropped, with their pid", { ...T, skip: isStock && "stock @socket.io/cluster-adapter: has no hub" }, async (t) => {
  const c = await clusterFor(t, { workers: 2, primaryEnv: { DEBUG: "socket.io-cluster-rs:hub" } });
  await c.connectAll();
  const connected = await waitFor(() => {
    const l = linesOf(c, "socket.io-cluster-rs:hub").filter((x) => /worker connected/.test(x));
    return l.length >= 2 && l;
  }, 3000, "a 'worker connected' line per worker from the hub");
  for (const line of connected) assert.match(line, /INFO worker\{pid=\d+ node=\d+\}: worker connected/);
  await c.kill(1, "SIGKILL");
  await waitFor(
    () => linesOf(c, "socket.io-cluster-rs:hub").some((x) => /worker\{pid=\d+ node=\d+\}: worker (disconnected|dropped)/.test(x)),
    3000,
    "a line when the killed worker's connection ends",
  );
});

it("without DEBUG the hub logs nothing", { ...T, skip: isStock && "stock @socket.io/cluster-adapter: has no hub" }, async (t) => {
  const c = await clusterFor(t, { workers: 2, primaryEnv: { DEBUG: "" } });
  await c.connectAll();
  await c.kill(1, "SIGKILL");
  await new Promise((r) => setTimeout(r, 300));
  assert.doesNotMatch(c.output(), /worker connected|worker disconnected|worker\{pid=/);
});
