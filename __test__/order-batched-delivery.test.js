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

/**
 * A cluster of 2 workers serving "/" and "/b", with clients on worker `index`:
 * one Engine.IO connection carrying "/" and "/b" (multiplexed, "ws"), a
 * polling-only client and a "watched" socket with an onAnyOutgoing listener
 * (its packets in state.outgoing). "ws" and "watched" are in room "r";
 * state.writes counts the Engine.IO writes to "ws".
 */
async function mixedClients(t, index) {
  const c = await clusterFor(t, { workers: 2 });
  await c.execAll(({ io }) => void io.of("/b"));
  await c.waitForServerCount(2, { nsp: "/b" });
  const ws = await c.connect(index, { forceNew: false });
  const wsB = await c.connect(index, { nsp: "/b", forceNew: false });
  assert.equal(ws.io, wsB.io, "both namespaces share one connection");
  const poll = await c.connect(index, { transports: ["polling"] });
  const watched = await c.connect(index);
  await c.exec(index, ({ socketOf, state }, ids) => {
    socketOf(ids.ws).join("r");
    socketOf(ids.watched).join("r");
    state.outgoing = [];
    socketOf(ids.watched).onAnyOutgoing((event, arg) => state.outgoing.push(`${event}:${arg}`));
    state.writes = 0;
    socketOf(ids.ws).conn.on("packetCreate", () => state.writes++);
  }, { ws: ws.id, watched: watched.id });
  return { c, wsSeen: recorder(ws, wsB), pollSeen: recorder(poll), watchedSeen: recorder(watched) };
}

/**
 * What mixedClients() saw: the WebSocket and polling clients got exactly the
 * expected messages in order (volatile ones, "v:", may be dropped but keep
 * their place), and the watched socket's client and its onAnyOutgoing
 * listener saw what "ws" saw on "/".
 */
async function assertMixedDelivery(c, index, { wsSeen, pollSeen, watchedSeen }, expectedWs, expectedPoll) {
  const solid = (seen) => seen.filter((e) => !e.startsWith("v:"));
  await waitFor(() => solid(wsSeen).length >= expectedWs.length && solid(pollSeen).length >= expectedPoll.length, 10_000, "every message");
  await sleep(100);
  assert.deepEqual(solid(wsSeen), expectedWs);
  assert.deepEqual(solid(pollSeen), expectedPoll);
  for (const seen of [wsSeen, pollSeen]) {
    const order = seen.filter((e) => e.startsWith("v:") || e.startsWith("m:")).map((e) => Number(e.slice(2)));
    for (let k = 1; k < order.length; k++) assert.ok(order[k] >= order[k - 1], `out of order: ${seen.join(" ")}`);
  }
  const expectedWatched = expectedWs.filter((e) => !e.startsWith("b:"));
  await waitFor(() => solid(watchedSeen).length >= expectedWatched.length, 10_000, "every message on the watched socket");
  assert.deepEqual(solid(watchedSeen), expectedWatched);
  const outgoing = await c.exec(index, ({ state }) => state.outgoing);
  assert.deepEqual(solid(outgoing), expectedWatched);
}

/**
 * Worker 0 emits N broadcasts in one synchronous stretch, mixing everyone,
 * namespace /b, room r and volatile packets (and, with `binary`, packets with
 * an attachment, framed by the adapter and held in their place). Returns what
 * the WebSocket clients (in /, /b and r) and the polling client (in / only;
 * volatile packets may be dropped for either) must see, in order.
 */
async function emitMixedBurst(c, { binary }) {
  await c.exec(
    0,
    ({ io }, { n, binary }) => {
      for (let i = 0; i < n; i++) {
        io.emit("m", i);
        if (i % 10 === 0) io.of("/b").emit("b", i);
        if (i % 15 === 0) io.to("r").emit("r", i);
        if (i % 20 === 0) io.volatile.emit("v", i);
        if (binary && i % 25 === 0) io.emit("bin", i, Buffer.from([i]));
      }
    },
    { n: N, binary },
  );
  const expectedWs = [];
  const expectedPoll = [];
  for (let i = 0; i < N; i++) {
    expectedWs.push(`m:${i}`);
    expectedPoll.push(`m:${i}`);
    if (i % 10 === 0) expectedWs.push(`b:${i}`);
    if (i % 15 === 0) expectedWs.push(`r:${i}`);
    if (binary && i % 25 === 0) {
      expectedWs.push(`bin:${i}`);
      expectedPoll.push(`bin:${i}`);
    }
  }
  return { expectedWs, expectedPoll };
}

describe("remote broadcasts emitted in one tick", () => {
  it("reach WebSocket and polling clients complete and in emit order, across namespaces, rooms and volatile packets", T, async (t) => {
    const { c, wsSeen, pollSeen, watchedSeen } = await mixedClients(t, 1);
    const { expectedWs, expectedPoll } = await emitMixedBurst(c, { binary: false });
    await assertMixedDelivery(c, 1, { wsSeen, pollSeen, watchedSeen }, expectedWs, expectedPoll);
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

// Local broadcasts of one synchronous stretch are delivered together in one
// microtask (lib/adapter.js, holdLocal): the same guarantees, on the emitter.
describe("local broadcasts emitted in one tick", () => {
  it("reach WebSocket and polling clients complete and in emit order, across namespaces, rooms, binary and volatile packets, in few writes", T, async (t) => {
    const { c, wsSeen, pollSeen, watchedSeen } = await mixedClients(t, 0);
    const { expectedWs, expectedPoll } = await emitMixedBurst(c, { binary: true });
    await assertMixedDelivery(c, 0, { wsSeen, pollSeen, watchedSeen }, expectedWs, expectedPoll);
    // Each switch of namespace starts a new group, and volatile packets are
    // written on their own: fewer writes than messages, not one.
    const writes = await c.exec(0, ({ state }) => state.writes);
    assert.ok(writes < expectedWs.length / 2, `${writes} writes for ${expectedWs.length} messages`);

    // Without those breaks, the WebSocket client gets a whole tick's
    // broadcasts, to everyone and to its room interleaved, in one write.
    const before = wsSeen.length;
    const after = await c.exec(0, ({ io, state }, n) => {
      state.writes = 0;
      for (let i = 0; i < n; i++) {
        io.emit("m", i);
        if (i % 3 === 0) io.to("r").emit("r", i);
      }
      return new Promise((resolve) => setTimeout(() => resolve(state.writes), 50));
    }, N);
    const expectedMore = [];
    for (let i = 0; i < N; i++) {
      expectedMore.push(`m:${i}`);
      if (i % 3 === 0) expectedMore.push(`r:${i}`);
    }
    await waitFor(() => wsSeen.length >= before + expectedMore.length, 10_000, "the second burst");
    assert.deepEqual(wsSeen.slice(before), expectedMore);
    assert.equal(after, 1, `${after} writes for ${expectedMore.length} messages`);
  });

  it("come after the socket's own synchronous emits, as with the stock adapter (README, difference 12)", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    const client = await c.connect(0);
    const seen = recorder(client);
    await c.exec(0, ({ io, socketOf }, id) => {
      const socket = socketOf(id);
      io.emit("m", "a");
      Promise.resolve().then(() => socket.emit("m", "b"));
      io.emit("m", "c");
      socket.emit("m", "d");
      queueMicrotask(() => queueMicrotask(() => socket.emit("m", "e")));
      io.emit("m", "f");
    }, client.id);
    await waitFor(() => seen.length >= 6, 5000, "six messages");
    // d: synchronous; a, c, f: the broadcasts of this stretch, delivered
    // together one microtask later; b and e: queued behind that microtask
    // (the stock adapter delivers b between a and c).
    assert.deepEqual(seen, ["m:d", "m:a", "m:c", "m:f", "m:b", "m:e"]);
  });

  it("keep their order with socketsLeave(), disconnectSockets() and broadcasts of another namespace in between", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    await c.execAll(({ io }) => void io.of("/b"));
    await c.waitForServerCount(2, { nsp: "/b" });
    const a = await c.connect(0);
    const b = await c.connect(0, { forceNew: false });
    const bB = await c.connect(0, { nsp: "/b", forceNew: false });
    await c.exec(0, ({ socketOf }, ids) => {
      socketOf(ids.a).join("r");
      socketOf(ids.b).join("r");
    }, { a: a.id, b: b.id });
    const aSeen = recorder(a);
    const bSeen = recorder(b, bB);
    const bGone = new Promise((resolve) => b.on("disconnect", resolve));

    await c.exec(0, ({ io }, ids) => {
      io.to("r").emit("m", 0);
      io.of("/b").emit("b", 1);
      io.to("r").emit("m", 2);
      // Applied after a microtask, like the delivery of what came before: a
      // gets the broadcasts up to here, not those after.
      io.in(ids.a).socketsLeave("r");
      io.to("r").emit("m", 3);
      io.of("/b").emit("b", 4);
      io.in(ids.b).disconnectSockets();
      io.to("r").emit("m", 5);
      io.of("/b").emit("b", 6);
    }, { a: a.id, b: b.id });

    await bGone;
    await sleep(200);
    assert.deepEqual(aSeen, ["m:0", "m:2"]);
    // b's "/" socket is disconnected after m:3; its "/b" socket stays and gets b:6.
    assert.deepEqual(bSeen, ["m:0", "b:1", "m:2", "m:3", "b:4", "b:6"]);
  });
});

// Binary broadcasts travel as WebSocket frames too (lib/frames.js): the
// default parser's attachments and binary parsers' packets are held and
// written like text ones, and reach clients of every kind intact.
describe("binary broadcasts emitted in one tick", () => {
  const PARSER = require.resolve("./fixtures/parser/binary");

  /** Counts Engine.IO writes per socket id on `index` (state.writes). */
  const countWrites = (c, index, ids) =>
    c.exec(index, ({ socketOf, state }, ids) => {
      state.writes = {};
      for (const id of ids) {
        state.writes[id] = 0;
        socketOf(id).conn.on("packetCreate", () => state.writes[id]++);
      }
    }, ids);

  it("with attachments reach local and remote, WebSocket and polling clients complete, in order and as binary, in few writes", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    const local = await c.connect(0);
    const remote = await c.connect(1);
    const poll = await c.connect(1, { transports: ["polling"] });
    await c.exec(1, ({ socketOf }, id) => socketOf(id).join("r"), remote.id);
    await countWrites(c, 0, [local.id]);
    await countWrites(c, 1, [remote.id]);
    const record = (s) => {
      const seen = [];
      s.on("bin", (i, buf) => seen.push(`bin:${i}:${Buffer.isBuffer(buf) ? [...buf].join(",") : typeof buf}`));
      s.on("t", (i) => seen.push(`t:${i}`));
      return seen;
    };
    const seen = [local, remote, poll].map(record);

    await c.exec(0, ({ io }, n) => {
      for (let i = 0; i < n; i++) {
        io.emit("bin", i, Buffer.from([i % 256, 7, 0, 255]));
        if (i % 4 === 0) io.to("r").emit("t", i);
      }
    }, N);

    const all = [];
    const inRoom = [];
    for (let i = 0; i < N; i++) {
      all.push(`bin:${i}:${i % 256},7,0,255`);
      inRoom.push(`bin:${i}:${i % 256},7,0,255`);
      if (i % 4 === 0) inRoom.push(`t:${i}`);
    }
    const expected = [all, inRoom, all];
    await waitFor(() => seen.every((s, k) => s.length >= expected[k].length), 10_000, "every message");
    await sleep(100);
    for (let k = 0; k < seen.length; k++) assert.deepEqual(seen[k], expected[k], ["local", "remote", "polling"][k]);
    const [localWrites, remoteWrites] = await Promise.all([0, 1].map((i) => c.exec(i, ({ state }) => state.writes)));
    assert.ok(localWrites[local.id] < all.length / 4, `local: ${localWrites[local.id]} writes for ${all.length} messages`);
    assert.ok(remoteWrites[remote.id] < inRoom.length / 4, `remote: ${remoteWrites[remote.id]} writes for ${inRoom.length} messages`);
  });

  it("reach clients with per-message deflate (which take no precomputed frames) complete, in order and as binary", T, async (t) => {
    const c = await clusterFor(t, { workers: 2, serverOpts: { perMessageDeflate: { threshold: 0 } } });
    const local = await c.connect(0);
    const remote = await c.connect(1);
    const deflating = await c.exec(1, ({ socketOf }, id) => !!socketOf(id).conn.transport.perMessageDeflate, remote.id);
    assert.ok(deflating, "the client negotiated per-message deflate");
    const seen = [local, remote].map((s) => {
      const out = [];
      s.on("bin", (i, buf) => out.push(`bin:${i}:${Buffer.isBuffer(buf) ? [...buf].join(",") : typeof buf}`));
      s.on("t", (i) => out.push(`t:${i}`));
      return out;
    });
    await c.exec(0, ({ io }, n) => {
      for (let i = 0; i < n; i++) {
        io.emit("t", i);
        if (i % 3 === 0) io.emit("bin", i, Buffer.from([i % 256, 1]));
      }
    }, 100);
    const expected = [];
    for (let i = 0; i < 100; i++) {
      expected.push(`t:${i}`);
      if (i % 3 === 0) expected.push(`bin:${i}:${i % 256},1`);
    }
    await waitFor(() => seen.every((s) => s.length >= expected.length), 10_000, "every message");
    await sleep(100);
    for (const s of seen) assert.deepEqual(s, expected);
  });

  it("with a binary parser reach local and remote clients complete and in order, in few writes", T, async (t) => {
    const c = await clusterFor(t, { workers: 2, serverOpts: { parserModule: PARSER } });
    const parser = require(PARSER);
    const local = await c.connect(0, { parser });
    const remote = await c.connect(1, { parser });
    const watched = await c.connect(1, { parser });
    await countWrites(c, 0, [local.id]);
    await countWrites(c, 1, [remote.id]);
    await c.exec(1, ({ socketOf, state }, id) => {
      state.outgoing = [];
      socketOf(id).onAnyOutgoing((event, arg) => state.outgoing.push(`${event}:${arg}`));
    }, watched.id);
    const seen = [local, remote, watched].map((s) => recorder(s));

    await c.exec(0, ({ io }, n) => {
      for (let i = 0; i < n; i++) {
        io.emit("m", i);
        if (i % 50 === 0) io.volatile.emit("v", i);
      }
    }, N);

    const expected = [];
    for (let i = 0; i < N; i++) expected.push(`m:${i}`);
    const solid = (s) => s.filter((e) => !e.startsWith("v:"));
    await waitFor(() => seen.every((s) => solid(s).length >= N), 10_000, "every message");
    await sleep(100);
    for (const s of seen) assert.deepEqual(solid(s), expected);
    assert.deepEqual(solid(await c.exec(1, ({ state }) => state.outgoing)), expected);
    const [localWrites, remoteWrites] = await Promise.all([0, 1].map((i) => c.exec(i, ({ state }) => state.writes)));
    assert.ok(localWrites[local.id] < N / 4, `local: ${localWrites[local.id]} writes for ${N} messages`);
    assert.ok(remoteWrites[remote.id] < N / 4, `remote: ${remoteWrites[remote.id]} writes for ${N} messages`);
  });
});

// The emitter caches what it sends per room and receivers cache decoded
// targets (lib/adapter.js, oneRoom and readMeta), both bounded: past their
// size they start over, and nothing may go astray.
describe("more distinct targets than the caches hold", () => {
  it("still reach exactly their members", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    const client = await c.connect(1);
    await c.exec(1, ({ socketOf }, id) => socketOf(id).join(["q7", 7, "q1499"]), client.id);
    const seen = recorder(client);
    await c.exec(0, ({ io }) => {
      for (let i = 0; i < 1500; i++) {
        io.to(`q${i}`).emit("room", i);
        io.except(`x${i}`).emit("all", i);
      }
      io.to(7).emit("number", 7);
      io.to("7").emit("string", 7);
    });
    const expected = [];
    for (let i = 0; i < 1500; i++) {
      if (i === 7 || i === 1499) expected.push(`room:${i}`);
      expected.push(`all:${i}`);
    }
    expected.push("number:7");
    await waitFor(() => seen.length >= expected.length, 10_000, "every message");
    await sleep(100);
    assert.deepEqual(seen, expected);
  });
});
