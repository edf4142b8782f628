"use strict";
// Causal order between the primary's own worker.send() and the adapter's
// traffic. Applications push something to every worker from the primary (a
// room to join, a handler to register) and then trigger work on one of them;
// the work must find the others in the state the primary's earlier messages
// put them in. With the stock adapter both travel through the primary and
// each worker's single IPC pipe, so this holds by construction; over the hub
// the two channels must be ordered explicitly.
//
// Everything here is fire-and-forget from the primary, with no waits between
// the messages (as applications and the stock package's own suite do), over
// hundreds of iterations in one cluster, and must have no miss. It runs on
// both transports (and passes against the stock package too).

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, isStock } = require("./helpers/cluster");

const T = { timeout: 60_000 };
const ITERATIONS = 300;

/** Worker side: what the primary's "order:*" messages do. */
function installHandlers({ io, index, state }) {
  const socket = () => io.of("/").sockets.values().next().value;
  state.orderAnswers = 0;
  process.on("message", (msg) => {
    if (!msg || typeof msg.cmd !== "string" || !msg.cmd.startsWith("order:")) return;
    switch (msg.cmd) {
      case "order:join":
        socket().join(msg.room);
        return;
      case "order:socketsJoin":
        io.in(msg.from).socketsJoin(msg.to);
        return;
      case "order:listen":
        io.on(msg.event, (cb) => cb(index));
        return;
      case "order:emitWithAck":
        io.serverSideEmitWithAck(msg.event).then(
          (responses) => process.send({ cmd: "order:acked", i: msg.i, responses }),
          (err) => process.send({ cmd: "order:acked", i: msg.i, error: err.message }),
        );
        return;
      default:
    }
  });
  return socket().id;
}

/** The rooms named `prefix…` that this worker's socket is in, once it has `expected` of them (or after 3 s). */
async function roomsWithPrefix({ io, waitFor }, { prefix, expected }) {
  const socket = io.of("/").sockets.values().next().value;
  const mine = () => [...socket.rooms].filter((r) => typeof r === "string" && r.startsWith(prefix));
  await waitFor(() => mine().length >= expected, 3000, `${expected} rooms ${prefix}*`).catch(() => {});
  return mine().sort();
}

/**
 * Primary side: iteration i makes worker b = (i+1)%3 join x<i>, and makes
 * worker a = i%3 move the members of x:<i> into y:<i> (socket ids never contain ":"). Odd iterations send a's
 * message first (as the stock suite does: both leave in one synchronous
 * stretch), even ones b's first. Every 7 iterations the primary yields to its
 * event loop, so the messages span many ticks.
 */
async function socketsJoinPattern({ workers }, { n }) {
  for (let i = 0; i < n; i++) {
    const a = workers[i % 3];
    const b = workers[(i + 1) % 3];
    const join = () => b.send({ cmd: "order:join", room: `x:${i}` });
    const move = () => a.send({ cmd: "order:socketsJoin", from: `x:${i}`, to: `y:${i}` });
    if (i % 2) {
      move();
      join();
    } else {
      join();
      move();
    }
    if (i % 7 === 6) await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

/**
 * Primary side: iteration i registers a handler for e<i> on the two other
 * workers and has worker i%3 call serverSideEmitWithAck(e<i>); resolves with
 * every emitter's outcome.
 */
async function emitWithAckPattern({ workers }, { n }) {
  const outcomes = new Map();
  let resolveAll;
  const all = new Promise((resolve) => (resolveAll = resolve));
  const onMessage = (msg) => {
    if (!msg || msg.cmd !== "order:acked") return;
    outcomes.set(msg.i, msg.error ? { error: msg.error } : { responses: msg.responses });
    if (outcomes.size === n) resolveAll();
  };
  for (const w of workers) w.on("message", onMessage);
  for (let i = 0; i < n; i++) {
    const a = workers[i % 3];
    const others = [workers[(i + 1) % 3], workers[(i + 2) % 3]];
    const listen = () => others.forEach((w) => w.send({ cmd: "order:listen", event: `e${i}` }));
    const emit = () => a.send({ cmd: "order:emitWithAck", event: `e${i}`, i });
    if (i % 2) {
      emit();
      listen();
    } else {
      listen();
      emit();
    }
    if (i % 7 === 6) await new Promise((resolve) => setImmediate(resolve));
  }
  const timer = setTimeout(resolveAll, 8000);
  await all;
  clearTimeout(timer);
  for (const w of workers) w.off("message", onMessage);
  return [...outcomes.entries()];
}

for (const transport of ["native", "ipc"]) {
  // No hub at this path: the workers fall back to the stock protocol over IPC.
  const env = transport === "ipc" ? { SOCKET_IO_CLUSTER_RS_HUB: "/nonexistent/socket.io-cluster-rs.sock" } : {};

  describe(`causal order with the primary's worker.send() (${transport} transport)`, () => {
    it(`a room joined on the primary's order is seen by socketsJoin() caused right after it (${ITERATIONS} iterations, 0 misses)`, T, async (t) => {
      const c = await clusterFor(t, { workers: 3, env, adapterOpts: { requestsTimeout: 1000 } });
      await c.connectAll();
      if (!isStock) assert.deepEqual(c.workers.map((w) => w.transport), [transport, transport, transport]);
      await c.execAll(installHandlers);
      await c.primaryExec(socketsJoinPattern, { n: ITERATIONS });
      for (let w = 0; w < 3; w++) {
        const expected = [];
        for (let i = 0; i < ITERATIONS; i++) if ((i + 1) % 3 === w) expected.push(`y:${i}`);
        const got = await c.exec(w, roomsWithPrefix, { prefix: "y:", expected: expected.length }, { timeout: 8000 });
        const missing = expected.filter((r) => !got.includes(r));
        assert.deepEqual(missing, [], `worker ${w} missed ${missing.length} of ${expected.length} socketsJoin()`);
        assert.deepEqual(got, expected.sort(), `worker ${w} joined rooms it should not have`);
      }
    });

    it(`a handler registered on the primary's order answers serverSideEmitWithAck() caused right after it (${ITERATIONS} iterations, 0 misses)`, T, async (t) => {
      const c = await clusterFor(t, { workers: 3, env, adapterOpts: { requestsTimeout: 1000 } });
      await c.connectAll();
      await c.execAll(installHandlers);
      const outcomes = await c.primaryExec(emitWithAckPattern, { n: ITERATIONS }, { timeout: 20_000 });
      assert.equal(outcomes.length, ITERATIONS, "every emitter reported");
      const bad = outcomes.filter(([i, o]) => {
        if (o.error) return true;
        const expected = [(i + 1) % 3, (i + 2) % 3].sort();
        return JSON.stringify([...o.responses].sort()) !== JSON.stringify(expected);
      });
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} of ${ITERATIONS} serverSideEmitWithAck() missed an answer`);
    });
  });
}
