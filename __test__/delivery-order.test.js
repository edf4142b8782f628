"use strict";
// Remote broadcasts that arrive together are held until the end of the batch
// and written to each WebSocket client in one write (lib/adapter.js,
// flushRemote). Whatever the grouping, every client must get every message,
// in emit order: across namespaces sharing one connection, rooms, volatile
// packets, polling clients (which take the messages one by one) and sockets
// with onAnyOutgoing listeners (which must see each packet).

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { clusterFor, waitFor, sleep } = require("./helpers/cluster");

const T = { timeout: 30_000 };
const N = 300;

/** Events in arrival order, from every given client socket, as "event:arg". */
function recorder(...sockets) {
  const seen = [];
  for (const s of sockets) s.onAny((event, arg) => seen.push(`${event}:${arg}`));
  return seen;
}

describe("remote broadcasts emitted in one tick", () => {
  it("reach WebSocket and polling clients complete and in emit order, across namespaces, rooms and volatile packets", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    await c.execAll(({ io }) => void io.of("/b"));
    await c.waitForServerCount(2, { nsp: "/b" });
    // One Engine.IO connection carrying "/" and "/b" (multiplexed), and a polling-only client.
    const ws = await c.connect(1, { forceNew: false });
    const wsB = await c.connect(1, { nsp: "/b", forceNew: false });
    assert.equal(ws.io, wsB.io, "both namespaces share one connection");
    const poll = await c.connect(1, { transports: ["polling"] });
    const watched = await c.connect(1);
    await c.exec(1, ({ socketOf, state }, ids) => {
      socketOf(ids.ws).join("r");
      socketOf(ids.watched).join("r");
      state.outgoing = [];
      socketOf(ids.watched).onAnyOutgoing((event, arg) => state.outgoing.push(`${event}:${arg}`));
    }, { ws: ws.id, watched: watched.id });
    const wsSeen = recorder(ws, wsB);
    const pollSeen = recorder(poll);
    const watchedSeen = recorder(watched);

    await c.exec(0, ({ io }, n) => {
      for (let i = 0; i < n; i++) {
        io.emit("m", i);
        if (i % 10 === 0) io.of("/b").emit("b", i);
        if (i % 15 === 0) io.to("r").emit("r", i);
        if (i % 20 === 0) io.volatile.emit("v", i);
      }
    }, N);

    const expectedWs = [];
    const expectedPoll = [];
    for (let i = 0; i < N; i++) {
      expectedWs.push(`m:${i}`);
      expectedPoll.push(`m:${i}`);
      if (i % 10 === 0) expectedWs.push(`b:${i}`);
      if (i % 15 === 0) expectedWs.push(`r:${i}`);
    }
    const solid = (seen) => seen.filter((e) => !e.startsWith("v:"));
    await waitFor(() => solid(wsSeen).length >= expectedWs.length && solid(pollSeen).length >= expectedPoll.length, 10_000, "every message");
    await sleep(100);
    assert.deepEqual(solid(wsSeen), expectedWs);
    assert.deepEqual(solid(pollSeen), expectedPoll);
    // Volatile packets may be dropped, but those that arrive keep their place.
    for (const seen of [wsSeen, pollSeen]) {
      const order = seen.filter((e) => e.startsWith("v:") || e.startsWith("m:")).map((e) => Number(e.slice(2)));
      for (let k = 1; k < order.length; k++) assert.ok(order[k] >= order[k - 1], `out of order: ${seen.join(" ")}`);
    }
    // A socket with onAnyOutgoing listeners: they saw each packet its client got.
    const expectedWatched = expectedWs.filter((e) => !e.startsWith("b:"));
    await waitFor(() => solid(watchedSeen).length >= expectedWatched.length, 10_000, "every message on the watched socket");
    assert.deepEqual(solid(watchedSeen), expectedWatched);
    const outgoing = await c.exec(1, ({ state }) => state.outgoing);
    assert.deepEqual(solid(outgoing), expectedWatched);
  });
});
