"use strict";
// Remote broadcasts that arrive together are held until the end of the batch
// and written to each WebSocket client in one write (lib/adapter.js,
// flushRemote), whatever rooms they target. Whatever the grouping, every client must get every message,
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

  it("to many rooms at once reach every member complete and in emit order, and a leave in between takes effect in place", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    // Six clients on worker 1, each in its own set of rooms out of r0..r4.
    const clients = [];
    for (let k = 0; k < 6; k++) clients.push(await c.connect(1));
    const rooms = (k) => [0, 1, 2, 3, 4].filter((r) => (k + r) % 3 !== 0).map((r) => `r${r}`);
    await c.exec(1, ({ socketOf, state }, members) => {
      state.writes = {};
      for (const [id, rs] of members) {
        socketOf(id).join(rs);
        // One Engine.IO packet per write to the client.
        state.writes[id] = 0;
        socketOf(id).conn.on("packetCreate", () => state.writes[id]++);
      }
    }, clients.map((s, k) => [s.id, rooms(k)]));
    const seen = clients.map((s) => recorder(s));

    // Interleaved rooms, an except, then client 0 leaves r1 half-way: the
    // broadcasts to r1 before the leave reach it, those after do not.
    await c.exec(0, ({ io }, { n, leaver }) => {
      for (let i = 0; i < n; i++) {
        io.to(`r${i % 5}`).emit("m", i);
        if (i % 7 === 0) io.to(["r0", "r3"]).except("r4").emit("x", i);
        if (i === n / 2) io.in(leaver).socketsLeave("r1");
      }
    }, { n: N, leaver: clients[0].id });

    const expected = clients.map((_, k) => {
      const mine = new Set(rooms(k));
      const out = [];
      for (let i = 0; i < N; i++) {
        const r = `r${i % 5}`;
        const left = k === 0 && r === "r1" && i > N / 2;
        if (mine.has(r) && !left) out.push(`m:${i}`);
        if (i % 7 === 0 && (mine.has("r0") || mine.has("r3")) && !mine.has("r4")) out.push(`x:${i}`);
      }
      return out;
    });
    await waitFor(() => seen.every((s, k) => s.length >= expected[k].length), 10_000, "every message");
    await sleep(100);
    for (let k = 0; k < clients.length; k++) assert.deepEqual(seen[k], expected[k], `client ${k}`);
    // Emitted in one tick, they arrive in a few batches: each client got its
    // messages in a few writes, not one write per message.
    const writes = await c.exec(1, ({ state }) => state.writes);
    for (let k = 0; k < clients.length; k++) {
      const n = writes[clients[k].id];
      assert.ok(n < expected[k].length / 4, `client ${k}: ${n} writes for ${expected[k].length} messages`);
    }
  });
});
