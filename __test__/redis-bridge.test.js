"use strict";
// The primary's Redis bridge: setupPrimary({ redis: { url } }) makes the hub
// of each host (primary + its workers) that host's only Redis client, wire
// compatible with @socket.io/redis-adapter 8.x and @socket.io/redis-emitter 5.x.
//
// One redis-server per file (helpers/redis-server.js). Hosts:
//   A, B  our package: startCluster({ workers: 2, primaryOpts: { redis: { url } } })
//   S     a "stock host": 2 workers each using @socket.io/redis-adapter with
//         its own pub + sub clients (fixtures/redis-stock-adapter.js)
// plus an Emitter of @socket.io/redis-emitter in the test process. Everything
// is observed through real socket.io-client connections.
//
// Counting rules (the stock adapter counts Redis subscribers of the request
// channel, so it sees each of our hosts as ONE server):
//   - from our host: serverCount() and serverSideEmit answers count every
//     real worker of the fleet (A 2 + B 2 + S 2 = 6 servers, 5 answers);
//   - from a stock worker: one per stock worker and one per our host
//     (S 2 + A 1 + B 1 = 4 servers, 3 answers);
//   - fetchSockets() / emitWithAck() are complete from both sides (our host
//     answers once with the sockets / client count of all its workers).
// A request never waits past the asking worker's requestsTimeout (createAdapter
// option; with partialResults it resolves with the hosts that answered).

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { startCluster, sleep, waitFor } = require("./helpers/cluster");
const { startRedis } = require("./helpers/redis-server");
const { freePort } = require("./helpers/free-port");
const { isStock } = require("./helpers/adapter-module");
const { startStockHost } = require("./fixtures/redis-stock-adapter");

const T = { timeout: 30_000 };
const SKIP = isStock ? "stock @socket.io/cluster-adapter: no Redis bridge" : false;

function redisInstalled() {
  const r = spawnSync(process.env.REDIS_SERVER || "redis-server", ["--version"], { encoding: "utf8" });
  return r.status === 0;
}

function notepack() {
  try {
    return require("notepack.io");
  } catch {
    const from = path.dirname(require.resolve("@socket.io/redis-adapter"));
    return require(require.resolve("notepack.io", { paths: [from] }));
  }
}

/** A Redis-bridged host of ours. */
function startOurHost(url, { workers = 2, redis = {}, ...rest } = {}) {
  return startCluster({ workers, mesh: false, primaryOpts: { redis: { url, ...redis } }, ...rest });
}

/** primaryHandle.stats().redis of a host of ours (null when absent). */
function redisStats(c) {
  return c.primaryExec(({ primaryHandle }) =>
    primaryHandle && typeof primaryHandle.stats === "function" ? (primaryHandle.stats().redis ?? null) : null,
  );
}

/** SIGKILLs a host's primary and workers at once (no goodbye on Redis). */
function killHost(c) {
  for (const pid of [c.child.pid, ...c.workers.filter((w) => w && w.pid && !w.exit).map((w) => w.pid)]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * Book-keeping of the clients of a test: each client has a label
 * ("A0", "S1-x"...), the host and worker it is connected to, and answers
 * "q" acknowledgements with its label.
 */
function makeClients() {
  const meta = new Map();
  let n = 0;
  const api = {
    meta,
    label: (s) => (meta.get(s) || { label: "?" }).label,
    async connect(hosts, host, worker, { nsp = "/", suffix = "" } = {}) {
      const s = await hosts[host].connect(worker, { nsp });
      const label = `${host}${worker}${suffix}`;
      meta.set(s, { host, worker, label, nsp, n: n++ });
      s.on("q", (...args) => {
        const cb = args.pop();
        if (typeof cb === "function") cb(label);
      });
      return s;
    },
  };
  return api;
}

/**
 * Listens for `event` on `all`, runs `trigger`, waits until every socket of
 * `expected` got it, lets `settle` ms pass and asserts that each socket of
 * `expected` got it exactly once and the others not at all. Resolves with
 * the argument lists per socket.
 */
async function expectDelivery({ all, expected, event, trigger, label, timeout = 5000, settle = 300 }) {
  const got = new Map(all.map((s) => [s, []]));
  const handlers = all.map((s) => {
    const h = (...args) => got.get(s).push(args);
    s.on(event, h);
    return [s, h];
  });
  const summary = () => all.map((s) => `${label(s)}:${got.get(s).length}`).join(" ");
  try {
    await trigger();
    const deadline = Date.now() + timeout;
    while (!expected.every((s) => got.get(s).length >= 1)) {
      if (Date.now() > deadline) {
        throw new Error(`"${event}" not received by all of [${expected.map(label)}] within ${timeout} ms; counts: ${summary()}`);
      }
      await sleep(10);
    }
    await sleep(settle);
    const want = all.map((s) => `${label(s)}:${expected.includes(s) ? 1 : 0}`).join(" ");
    assert.equal(summary(), want, `deliveries of "${event}" (label:count)`);
    return got;
  } finally {
    for (const [s, h] of handlers) s.off(event, h);
  }
}

/**
 * Emits (through `trigger`) an event carrying `token`; resolves with the
 * sockets of `sockets` that got it within `timeout` ms.
 */
async function reached(sockets, event, token, trigger, timeout) {
  const seen = new Set();
  const h = new Map();
  for (const s of sockets) {
    const f = (t) => {
      if (t === token) seen.add(s);
    };
    h.set(s, f);
    s.on(event, f);
  }
  try {
    await trigger();
    const deadline = Date.now() + timeout;
    while (seen.size < sockets.length && Date.now() <= deadline) await sleep(10);
    return seen;
  } finally {
    for (const [s, f] of h) s.off(event, f);
  }
}

/**
 * Polls until a broadcast from worker 0 of every host of `from` (on each
 * namespace of `targets`) reaches every socket of `targets[nsp]`; rejects
 * after `timeout` naming the sockets that were missed.
 */
async function waitCrossHost(hosts, from, targets, { timeout = 15000, what = "cross-host broadcasts", label = () => "?" } = {}) {
  const deadline = Date.now() + timeout;
  let round = 0;
  const pendingPairs = [];
  for (const h of from) for (const nsp of Object.keys(targets)) pendingPairs.push([h, nsp]);
  while (pendingPairs.length) {
    const [h, nsp] = pendingPairs[0];
    const token = `warm-${++round}`;
    const seen = await reached(
      targets[nsp],
      "warm",
      token,
      () => hosts[h].exec(0, ({ io }, [name, tok]) => io.of(name).emit("warm", tok), [nsp, token]).catch(() => {}),
      500,
    );
    if (seen.size === targets[nsp].length) pendingPairs.shift();
    else if (Date.now() > deadline) {
      const missed = targets[nsp].filter((s) => !seen.has(s)).map(label);
      const failed = pendingPairs.map(([fh, fn]) => `${fh}${fn}`).join(", ");
      throw new Error(`${what}: io.of("${nsp}").emit() from ${h}0 not received by [${missed}] after ${timeout} ms (still failing or untried: ${failed})`);
    }
  }
}

describe("Redis bridge: our hosts A and B, stock host S, an emitter", { skip: SKIP, timeout: 180_000 }, () => {
  let redis;
  const hosts = {};
  const C = makeClients();
  const main = { A: [], B: [], S: [] }; // "/" clients, one per worker
  const chat = { A: [], B: [], S: [] }; // "/chat" clients, one per worker
  let allMain;
  let allChat;
  let roomR; // main clients in room "r": A1, B0, S1
  let emitter;
  let emitterClient;
  const conns = {};
  let warmup = null;
  const label = C.label;

  before(async () => {
    assert.ok(redisInstalled(), "redis-server is not installed (apt-get install redis-server; .ci/run does it)");
    redis = await startRedis();
    const { createClient } = require("redis");
    emitterClient = createClient({ url: redis.url });
    emitterClient.on("error", () => {});
    await emitterClient.connect();
    const { Emitter } = require("@socket.io/redis-emitter");
    emitter = new Emitter(emitterClient);

    // Connection counts around each host's start (asserted in test h).
    const count = async () => (await redis.clients()).filter((c) => c.cmd !== "client|list").length;
    const settleCount = async (base, atLeast) => {
      await waitFor(async () => (await count()) - base >= atLeast, 5000, "new Redis connections").catch(() => {});
      await sleep(300);
      return count();
    };
    conns.base = await count();
    hosts.S = await startStockHost({ url: redis.url });
    conns.afterS = await settleCount(conns.base, 4);
    hosts.A = await startOurHost(redis.url);
    conns.afterA = await settleCount(conns.afterS, 2);
    hosts.B = await startOurHost(redis.url);
    conns.afterB = await settleCount(conns.afterA, 2);

    for (const h of ["A", "B", "S"]) {
      await hosts[h].execAll(
        async ({ io, index, state, adapterModule }, host) => {
          state.label = `${host}${index}`;
          state.sse = [];
          io.on("sse", (arg, cb) => cb(state.label));
          io.on("sse-noack", (arg) => state.sse.push(arg));
          io.of("/chat");
          if (typeof adapterModule.whenSubscribed === "function") await adapterModule.whenSubscribed();
        },
        h,
      );
    }
    for (const h of ["A", "B", "S"]) {
      for (const w of [0, 1]) {
        main[h].push(await C.connect(hosts, h, w));
        chat[h].push(await C.connect(hosts, h, w, { nsp: "/chat", suffix: "c" }));
      }
    }
    allMain = [...main.A, ...main.B, ...main.S];
    allChat = [...chat.A, ...chat.B, ...chat.S];
    for (const s of allMain) {
      const { host, worker } = C.meta.get(s);
      await hosts[host].exec(worker, ({ socketOf }, [id, l]) => (socketOf(id).data = { label: l }), [s.id, label(s)]);
    }
    roomR = [main.A[1], main.B[0], main.S[1]];
    for (const s of roomR) {
      const { host, worker } = C.meta.get(s);
      await hosts[host].exec(worker, ({ socketOf }, id) => socketOf(id).join("r"), s.id);
    }
    // A failure here is reported by the first test, and every test still runs.
    warmup = await waitCrossHost(hosts, ["A", "B", "S"], { "/": allMain, "/chat": allChat }, { label }).then(
      () => null,
      (err) => err,
    );
  });

  after(async () => {
    await Promise.all(Object.values(hosts).map((h) => h.close()));
    if (emitterClient) await emitterClient.quit().catch(() => {});
    if (redis) await redis.stop();
  });

  /** Sorted labels of the main clients whose server-side socket is in `room`. */
  async function members(room) {
    const out = [];
    await Promise.all(
      allMain.map(async (s) => {
        const { host, worker } = C.meta.get(s);
        const inRoom = await hosts[host].exec(
          worker,
          ({ io }, [id, r]) => {
            const sock = io.of("/").sockets.get(id);
            return !!sock && sock.rooms.has(r);
          },
          [s.id, room],
        );
        if (inRoom) out.push(label(s));
      }),
    );
    return out.sort();
  }

  async function waitMembers(room, want, timeout = 3000) {
    let last;
    try {
      await waitFor(async () => JSON.stringify((last = await members(room))) === JSON.stringify(want), timeout);
    } catch {
      assert.deepEqual(last, want, `members of room "${room}"`);
    }
  }

  /** Extra clients (to be disconnected), joined to `room` on their worker. */
  async function extras(where, room) {
    const out = [];
    for (const [h, w] of where) {
      const s = await C.connect(hosts, h, w, { suffix: `-${room}` });
      await hosts[h].exec(w, ({ socketOf }, [id, r]) => socketOf(id).join(r), [s.id, room]);
      out.push(s);
    }
    return out;
  }

  async function expectDisconnected(victims, trigger) {
    const reasons = victims.map(
      (s) =>
        new Promise((resolve) => {
          if (!s.connected) resolve("already disconnected");
          s.once("disconnect", resolve);
        }),
    );
    await trigger();
    const got = await Promise.race([Promise.all(reasons), sleep(5000).then(() => null)]);
    assert.ok(got, `not all of [${victims.map(label)}] were disconnected within 5 s: ${victims.map((s) => `${label(s)}:${s.connected}`)}`);
    assert.deepEqual(got, victims.map(() => "io server disconnect"));
    await sleep(200);
    assert.deepEqual(
      allMain.filter((s) => !s.connected).map(label),
      [],
      "only the targeted sockets are disconnected",
    );
  }

  it("0. broadcasts cross between all hosts on / and /chat (start-up)", T, async (t) => {
    t.diagnostic(`A stats().redis: ${JSON.stringify(await redisStats(hosts.A).catch((err) => err.message))}`);
    if (warmup) throw warmup;
  });

  // ---- a. broadcasts -------------------------------------------------------

  it("a1. io.emit from a worker of A reaches every client of A, B and S exactly once", T, async () => {
    const got = await expectDelivery({
      all: [...allMain, ...allChat],
      expected: allMain,
      event: "a1",
      label,
      trigger: () => hosts.A.exec(0, ({ io }) => io.emit("a1", "hello", { n: 1 })),
    });
    for (const s of allMain) assert.deepEqual(got.get(s)[0], ["hello", { n: 1 }], label(s));
  });

  it("a2. io.emit from a stock worker reaches every client of A, B and S exactly once", T, async () => {
    await expectDelivery({
      all: [...allMain, ...allChat],
      expected: allMain,
      event: "a2",
      label,
      trigger: () => hosts.S.exec(1, ({ io }) => io.emit("a2", 2)),
    });
  });

  it("a3. io.to('r') from A, B and S reaches only the members of r, on every host", T, async () => {
    for (const [h, w] of [["A", 0], ["B", 1], ["S", 0]]) {
      await expectDelivery({
        all: allMain,
        expected: roomR,
        event: `a3-${h}`,
        label,
        trigger: () => hosts[h].exec(w, ({ io }, ev) => io.to("r").emit(ev, "room"), `a3-${h}`),
      });
    }
  });

  it("a4. except('r') from B and from S skips the members of r on every host", T, async () => {
    const others = allMain.filter((s) => !roomR.includes(s));
    await expectDelivery({
      all: allMain,
      expected: others,
      event: "a4-B",
      label,
      trigger: () => hosts.B.exec(1, ({ io }) => io.except("r").emit("a4-B")),
    });
    await expectDelivery({
      all: allMain,
      expected: others,
      event: "a4-S",
      label,
      trigger: () => hosts.S.exec(0, ({ io }) => io.except("r").emit("a4-S")),
    });
    // to() + except(): room r minus one socket on another host.
    const target = main.B[0];
    await expectDelivery({
      all: allMain,
      expected: roomR.filter((s) => s !== target),
      event: "a4-A",
      label,
      trigger: () => hosts.A.exec(0, ({ io }, id) => io.to("r").except(id).emit("a4-A"), target.id),
    });
  });

  it("a5. binary payloads cross hosts intact, in both directions", T, async () => {
    const bytes = [0, 1, 2, 127, 128, 254, 255];
    const check = (got, who) => {
      for (const s of who) {
        const [[buf, nested]] = got.get(s);
        assert.deepEqual([...Buffer.from(buf)], bytes, `${label(s)} top-level Buffer`);
        assert.equal(nested.name, "x", label(s));
        assert.deepEqual([...Buffer.from(nested.data)], bytes.slice().reverse(), `${label(s)} nested Buffer`);
      }
    };
    const send = ({ io }, b) => io.emit("a5", Buffer.from(b), { name: "x", data: Buffer.from(b.slice().reverse()) });
    check(await expectDelivery({ all: allMain, expected: allMain, event: "a5", label, trigger: () => hosts.A.exec(1, send, bytes) }), allMain);
    check(await expectDelivery({ all: allMain, expected: allMain, event: "a5", label, trigger: () => hosts.S.exec(0, send, bytes) }), allMain);
    check(await expectDelivery({ all: allMain, expected: allMain, event: "a5", label, trigger: () => hosts.B.exec(0, send, bytes) }), allMain);
  });

  it("a6. a namespace other than / ('/chat') is bridged, and only to its clients", T, async () => {
    for (const [h, w] of [["A", 1], ["S", 0], ["B", 0]]) {
      const got = await expectDelivery({
        all: [...allMain, ...allChat],
        expected: allChat,
        event: "a6",
        label,
        trigger: () => hosts[h].exec(w, ({ io }, from) => io.of("/chat").emit("a6", from), h),
      });
      for (const s of allChat) assert.deepEqual(got.get(s)[0], [h]);
    }
  });

  // ---- d. fetchSockets -----------------------------------------------------

  const fetchFrom = (h, w, room) =>
    hosts[h].exec(
      w,
      async ({ io }, r) => {
        const sockets = await (r ? io.in(r) : io).fetchSockets();
        return sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data }));
      },
      room,
      { timeout: 8000 },
    ).catch((err) => {
      throw new Error(`${room ? `in("${room}").` : ""}fetchSockets() from ${h}${w}: ${err.message}`);
    });

  it("d. fetchSockets() from A and from S returns every socket of A, B and S", T, async () => {
    const want = allMain.map((s) => s.id).sort();
    for (const [h, w] of [["A", 0], ["A", 1], ["B", 1], ["S", 0], ["S", 1]]) {
      const got = await fetchFrom(h, w);
      assert.equal(got.length, allMain.length, `fetchSockets() from ${h}${w}: ${got.length} sockets: ${got.map((s) => s.data && s.data.label)}`);
      assert.deepEqual(got.map((s) => s.id).sort(), want, `ids from ${h}${w}`);
      for (const s of got) {
        const client = allMain.find((c) => c.id === s.id);
        assert.deepEqual(s.data, { label: label(client) }, `data of ${label(client)} from ${h}${w}`);
        assert.equal(s.rooms.includes("r"), roomR.includes(client), `rooms of ${label(client)} from ${h}${w}`);
      }
    }
    for (const [h, w] of [["A", 1], ["S", 1]]) {
      const inR = await fetchFrom(h, w, "r");
      assert.deepEqual(inR.map((s) => s.id).sort(), roomR.map((s) => s.id).sort(), `in("r").fetchSockets() from ${h}${w}`);
    }
  });

  it("j. allRooms() and roomSize() on a worker of ours count the rooms of every host", T, async () => {
    for (const [h, w] of [["A", 0], ["B", 1]]) {
      const { rooms, size, nobody } = await hosts[h].exec(w, async ({ io }) => {
        const adapter = io.of("/").adapter;
        return { rooms: [...(await adapter.allRooms())], size: await adapter.roomSize("r"), nobody: await adapter.roomSize("nobody") };
      });
      assert.ok(rooms.includes("r"), `allRooms() from ${h}${w} includes "r": ${rooms}`);
      // Members of r: A1, B0 and S1, one per host.
      assert.equal(size, roomR.length, `roomSize("r") from ${h}${w}`);
      assert.equal(nobody, 0, `roomSize("nobody") from ${h}${w}`);
    }
  });

  // ---- e. serverSideEmit and serverCount -------------------------------------

  const sseWithAck = (h, w) =>
    hosts[h].exec(
      w,
      ({ io }) =>
        new Promise((resolve) => {
          io.serverSideEmit("sse", "ping", (err, responses) => resolve({ err: err ? err.message : null, responses }));
        }),
      undefined,
      { timeout: 10000 },
    );

  it("e1. serverSideEmit with ack from A: one answer per other worker of the fleet (5)", T, async () => {
    const { err, responses } = await sseWithAck("A", 0);
    assert.equal(err, null, `error: ${err}; responses: ${JSON.stringify(responses)}`);
    assert.deepEqual([...responses].sort(), ["A1", "B0", "B1", "S0", "S1"]);
  });

  it("e2. serverSideEmit with ack from S: one answer per other stock worker and one per our host (3)", T, async () => {
    const { err, responses } = await sseWithAck("S", 0);
    assert.equal(err, null, `error: ${err}; responses: ${JSON.stringify(responses)}`);
    assert.equal(responses.length, 3, JSON.stringify(responses));
    assert.deepEqual(responses.map((r) => String(r)[0]).sort(), ["A", "B", "S"], JSON.stringify(responses));
    assert.ok(responses.includes("S1"), JSON.stringify(responses));
  });

  it("e3. serverSideEmit without ack reaches every other worker of every host exactly once", T, async () => {
    const all = [["A", 0], ["A", 1], ["B", 0], ["B", 1], ["S", 0], ["S", 1]];
    for (const [fh, fw] of [["A", 1], ["S", 0]]) {
      const token = `sse-${fh}${fw}`;
      await hosts[fh].exec(fw, ({ io }, tok) => io.serverSideEmit("sse-noack", tok), token);
      const expected = all.filter(([h, w]) => !(h === fh && w === fw));
      const seen = async () =>
        Promise.all(all.map(([h, w]) => hosts[h].exec(w, ({ state }, tok) => state.sse.filter((x) => x === tok).length, token)));
      await waitFor(
        async () => (await seen()).every((n, i) => n > 0 || (all[i][0] === fh && all[i][1] === fw)),
        5000,
        `${token} everywhere`,
      ).catch(() => {});
      await sleep(300);
      const counts = await seen();
      assert.deepEqual(
        all.map(([h, w], i) => `${h}${w}:${counts[i]}`),
        all.map(([h, w]) => `${h}${w}:${h === fh && w === fw ? 0 : 1}`),
        `serverSideEmit from ${fh}${fw}`,
      );
    }
  });

  it("e5. @socket.io/redis-emitter's serverSideEmit reaches every worker of every host exactly once", T, async () => {
    const all = [["A", 0], ["A", 1], ["B", 0], ["B", 1], ["S", 0], ["S", 1]];
    const token = "sse-emitter";
    emitter.serverSideEmit("sse-noack", token);
    const seen = async () =>
      Promise.all(all.map(([h, w]) => hosts[h].exec(w, ({ state }, tok) => state.sse.filter((x) => x === tok).length, token)));
    await waitFor(async () => (await seen()).every((n) => n > 0), 5000, `${token} everywhere`).catch(() => {});
    await sleep(300);
    const counts = await seen();
    assert.deepEqual(
      all.map(([h, w], i) => `${h}${w}:${counts[i]}`),
      all.map(([h, w]) => `${h}${w}:1`),
    );
  });

  it("e4. serverCount(): 6 on our hosts' workers, 4 on the stock workers", T, async () => {
    const counts = {};
    for (const h of ["A", "B", "S"]) counts[h] = await hosts[h].execAll(({ io }) => io.of("/").adapter.serverCount());
    assert.deepEqual(counts, { A: [6, 6], B: [6, 6], S: [4, 4] });
  });

  // ---- f. broadcast with acknowledgements --------------------------------------

  const emitWithAck = (h, w, room) =>
    hosts[h].exec(
      w,
      async ({ io }, r) => {
        try {
          return { ok: await (r ? io.to(r) : io).timeout(2000).emitWithAck("q") };
        } catch (err) {
          return { err: err.message };
        }
      },
      room,
      { timeout: 8000 },
    );

  it("f. io.timeout(2000).emitWithAck() from A and from S gets one answer per client of the fleet", T, async () => {
    const want = allMain.map(label).sort();
    for (const [h, w] of [["A", 0], ["B", 1], ["S", 1]]) {
      const t0 = Date.now();
      const res = await emitWithAck(h, w);
      assert.deepEqual(res.err, undefined, `emitWithAck from ${h}${w} failed after ${Date.now() - t0} ms: ${res.err}`);
      assert.deepEqual([...res.ok].sort(), want, `answers to emitWithAck from ${h}${w}`);
    }
    for (const [h, w] of [["A", 1], ["S", 0]]) {
      const res = await emitWithAck(h, w, "r");
      assert.deepEqual(res.err, undefined, `to("r").emitWithAck from ${h}${w}: ${res.err}`);
      assert.deepEqual([...res.ok].sort(), roomR.map(label).sort(), `answers to to("r").emitWithAck from ${h}${w}`);
    }
  });

  // ---- b. the emitter ----------------------------------------------------------

  it("b0. the primary's own emitter of A reaches every host, and its fetchSockets() sees every socket", T, async () => {
    await expectDelivery({
      all: allMain,
      expected: allMain,
      event: "b0",
      label,
      trigger: () => hosts.A.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("b0", "from A's primary")),
    });
    const ids = await hosts.A.primaryExec(
      async ({ primaryHandle }) => (await primaryHandle.emitter.fetchSockets()).map((s) => s.id),
      undefined,
      { timeout: 8000 },
    );
    assert.deepEqual([...ids].sort(), allMain.map((s) => s.id).sort());
  });

  it("b1. emitter.emit(), to('r') and of('/chat') reach the clients of our hosts (and S)", T, async () => {
    const got = await expectDelivery({
      all: [...allMain, ...allChat],
      expected: allMain,
      event: "b1",
      label,
      trigger: () => emitter.emit("b1", 1, Buffer.from([9, 8, 7])),
    });
    for (const s of allMain) {
      assert.equal(got.get(s)[0][0], 1);
      assert.deepEqual([...Buffer.from(got.get(s)[0][1])], [9, 8, 7], `${label(s)} Buffer from the emitter`);
    }
    await expectDelivery({ all: allMain, expected: roomR, event: "b1-r", label, trigger: () => emitter.to("r").emit("b1-r", "r") });
    await expectDelivery({
      all: allMain,
      expected: allMain.filter((s) => !roomR.includes(s)),
      event: "b1-x",
      label,
      trigger: () => emitter.except("r").emit("b1-x"),
    });
    await expectDelivery({
      all: [...allMain, ...allChat],
      expected: allChat,
      event: "b1-chat",
      label,
      trigger: () => emitter.of("/chat").emit("b1-chat", "c"),
    });
  });

  it("b2. emitter socketsJoin / socketsLeave act on our hosts' sockets", T, async () => {
    const targets = [main.A[0], main.B[1], main.S[0]];
    emitter.in(targets.map((s) => s.id)).socketsJoin("e1");
    await waitMembers("e1", targets.map(label).sort());
    emitter.socketsJoin("e-all");
    await waitMembers("e-all", allMain.map(label).sort());
    emitter.in("e1").socketsLeave(["e1", "e-all"]);
    await waitMembers("e1", []);
    await waitMembers("e-all", allMain.filter((s) => !targets.includes(s)).map(label).sort());
    emitter.socketsLeave("e-all");
    await waitMembers("e-all", []);
  });

  it("b3. emitter disconnectSockets(true) disconnects the targeted sockets of our hosts", T, async () => {
    const victims = await extras([["A", 1], ["B", 0], ["S", 1]], "kick-e");
    await expectDisconnected(victims, () => emitter.in("kick-e").disconnectSockets(true));
  });

  // ---- c. remote socketsJoin / socketsLeave / disconnectSockets ----------------

  it("c1. socketsJoin / socketsLeave from A act on B and S; from S on A and B", T, async () => {
    const fromA = [main.B[0], main.S[0]];
    await hosts.A.exec(0, ({ io }, ids) => io.in(ids).socketsJoin("c1"), fromA.map((s) => s.id));
    await waitMembers("c1", fromA.map(label).sort());
    await hosts.A.exec(1, ({ io }) => io.socketsJoin("c-all"));
    await waitMembers("c-all", allMain.map(label).sort());
    await hosts.S.exec(1, ({ io }) => io.in("c1").socketsLeave("c1"));
    await waitMembers("c1", []);
    const fromS = [main.A[0], main.B[1]];
    await hosts.S.exec(0, ({ io }, ids) => io.in(ids).socketsJoin("c2"), fromS.map((s) => s.id));
    await waitMembers("c2", fromS.map(label).sort());
    await hosts.S.exec(0, ({ io }) => io.except("r").socketsLeave("c-all"));
    await waitMembers("c-all", roomR.map(label).sort());
    await hosts.B.exec(0, ({ io }) => io.socketsLeave(["c2", "c-all"]));
    await waitMembers("c2", []);
    await waitMembers("c-all", []);
  });

  it("c2. disconnectSockets(true) from A disconnects sockets on A, B and S", T, async () => {
    const victims = await extras([["A", 1], ["B", 0], ["S", 1]], "kick-a");
    await expectDisconnected(victims, () => hosts.A.exec(0, ({ io }) => io.in("kick-a").disconnectSockets(true)));
  });

  it("c3. disconnectSockets(true) from S disconnects sockets on A and B", T, async () => {
    const victims = await extras([["A", 0], ["B", 1], ["B", 0]], "kick-s");
    await expectDisconnected(victims, () => hosts.S.exec(1, ({ io }) => io.in("kick-s").disconnectSockets(true)));
  });

  // ---- h. connections --------------------------------------------------------

  it("h. each of our hosts holds exactly 2 Redis connections, the stock host 2 per worker", T, async (t) => {
    const names = (await redis.clients()).filter((c) => c.cmd !== "client|list").map((c) => `${c.name || "-"}:${c.cmd}`);
    t.diagnostic(`CLIENT LIST (name:cmd): ${names.join(" ")}`);
    const stats = await redisStats(hosts.A);
    t.diagnostic(`A primaryHandle.stats().redis: ${JSON.stringify(stats)}`);
    assert.ok(stats, "stats().redis of A");
    assert.equal(stats.connected, true, "stats().redis.connected");
    assert.equal(stats.connects, 1, "stats().redis.connects (no reconnection during the suite)");
    assert.ok(stats.published > 0 && stats.received > 0, "stats().redis published / received");
    assert.deepEqual(
      { S: conns.afterS - conns.base, A: conns.afterA - conns.afterS, B: conns.afterB - conns.afterA },
      { S: 4, A: 2, B: 2 },
      `connection counts: ${JSON.stringify(conns)}`,
    );
    // Still so after all the traffic above (no connection per request or per worker).
    assert.equal(names.length - conns.base, 8, `connections now: ${names.length}, before the hosts: ${conns.base}`);
  });
});

// ---- i. malformed input -----------------------------------------------------

describe("Redis bridge: malformed messages on the adapter's channels", { skip: SKIP, timeout: 60_000 }, () => {
  let redis;
  const hosts = {};
  const C = makeClients();
  let all;

  before(async () => {
    assert.ok(redisInstalled(), "redis-server is not installed");
    redis = await startRedis();
    hosts.A = await startOurHost(redis.url);
    hosts.B = await startOurHost(redis.url);
    all = [];
    for (const h of ["A", "B"]) for (const w of [0, 1]) all.push(await C.connect(hosts, h, w));
  });

  after(async () => {
    await Promise.all(Object.values(hosts).map((h) => h.close()));
    if (redis) await redis.stop();
  });

  it("i. garbage, invalid JSON and ill-typed messages leave A (and B) working", T, async (t) => {
    await waitCrossHost(hosts, ["A", "B"], { "/": all }, { label: C.label, what: "before the malformed messages" });
    const pack = notepack().encode;
    const garbage = Buffer.from([0xc1, 0xff, 0x00, 0x92, 0xa1]);
    const big = Buffer.alloc(256 * 1024, 0xd9);
    const broadcasts = [
      garbage,
      big,
      Buffer.alloc(0),
      "not json {",
      '{"a":1}',
      pack(42),
      pack(["x"]),
      pack([null, null, null]),
      pack(["uid", "not a packet", 5]),
      pack(["uid", { type: "2", nsp: 5, data: "nope" }, { rooms: 5, except: "x", flags: 7 }]),
      pack(["uid", { type: 2, nsp: "/", data: ["i-bad", "opts null"] }, null]),
      pack(["uid", { type: 2, nsp: "/", data: "not an array" }, { rooms: [], except: [] }]),
      pack(["uid", { type: 2, nsp: "/", data: ["i-bad", "rooms [{}]"] }, { rooms: [{}], except: [1, null], flags: { volatile: "yes" } }]),
      pack(["uid", { type: 99, nsp: "/", data: ["i-bad", "packet type 99"] }, { rooms: [], except: [] }]),
    ];
    const requests = [
      garbage,
      big,
      "{not json",
      "null",
      "[]",
      '"str"',
      "123",
      '{"type":"x"}',
      '{"type":5,"requestId":{},"opts":7}',
      '{"type":5,"requestId":"bad-5","opts":{"rooms":"abc","except":null}}',
      '{"type":5,"requestId":"bad-5b","opts":{"rooms":[1,{}],"except":{}}}',
      '{"type":0,"requestId":"bad-0","rooms":5}',
      '{"type":1,"requestId":[]}',
      '{"type":2,"opts":{"rooms":5}}',
      '{"type":2,"sid":5,"room":{}}',
      '{"type":3,"opts":null,"rooms":"x"}',
      // (a well-formed REMOTE_DISCONNECT with rooms [] would rightly disconnect everyone)
      '{"type":4,"opts":{"rooms":["nobody-is-here"],"except":[]},"close":"yes-please"}',
      '{"type":4,"opts":{"rooms":7,"except":"x"},"close":true}',
      '{"type":6,"uid":"u","data":"notarray"}',
      '{"type":6,"uid":"u","requestId":"bad-6","data":{}}',
      '{"type":6,"uid":"u","requestId":"bad-6b","data":5}',
      pack({ type: 7 }),
      pack({ uid: "u", requestId: "bad-7", type: 7, packet: { type: 2, data: 5, nsp: "/" }, opts: { rooms: 1, except: {}, flags: "x" } }),
      pack({ uid: "u", requestId: 7, type: 7, packet: null, opts: null }),
    ];
    const responses = [
      garbage,
      "{not json",
      '{"requestId":{}}',
      '{"type":8,"requestId":"x","clientCount":"many"}',
      '{"type":9,"requestId":"x","packet":[1]}',
      '{"requestId":"nope","sockets":5}',
    ];
    const before = await redisStats(hosts.A);
    const bad = [];
    for (const s of all) s.on("i-bad", (what) => bad.push(`${C.label(s)}: ${what}`));
    const receivers = {};
    const culprits = [];
    const publish = async (channel, msgs) => {
      receivers[channel] = [];
      for (const [i, m] of msgs.entries()) {
        const down = all.filter((s) => !s.connected).length;
        receivers[channel].push(await redis.publish(channel, m));
        await sleep(20);
        if (all.filter((s) => !s.connected).length > down) {
          const text = Buffer.isBuffer(m) ? `<${m.length} bytes ${m.subarray(0, 24).toString("hex")}>` : m;
          culprits.push(`${channel} #${i} ${text.slice(0, 120)}`);
        }
      }
    };
    await publish("socket.io#/#", broadcasts);
    await publish("socket.io#/#r#", broadcasts.slice(0, 6));
    await publish("socket.io-request#/#", requests);
    await publish("socket.io-response#/#", responses);
    t.diagnostic(`PUBLISH receiver counts: ${JSON.stringify(receivers)}`);
    // The hubs of A and B did get them (else this test proves nothing).
    assert.ok(Math.min(...receivers["socket.io#/#"]) >= 2, `socket.io#/# reached ${receivers["socket.io#/#"]} subscribers`);
    assert.ok(Math.min(...receivers["socket.io-request#/#"]) >= 2, `socket.io-request#/# reached ${receivers["socket.io-request#/#"]} subscribers`);

    await sleep(500);
    for (const h of ["A", "B"]) {
      assert.equal(hosts[h].primaryExit, null, `${h}'s primary exited:\n${hosts[h].output()}`);
      assert.deepEqual(hosts[h].live(), [0, 1], `${h}'s workers:\n${hosts[h].output()}`);
    }
    assert.deepEqual(
      all.filter((s) => !s.connected).map(C.label),
      [],
      `clients disconnected by the malformed messages; after: ${culprits.join(" | ")}`,
    );

    // The bridge still carries broadcasts and requests both ways.
    await expectDelivery({ all, expected: all, event: "i-ok", label: C.label, trigger: () => hosts.A.exec(0, ({ io }) => io.emit("i-ok")) });
    await expectDelivery({ all, expected: all, event: "i-ok2", label: C.label, trigger: () => hosts.B.exec(1, ({ io }) => io.emit("i-ok2")) });
    const ids = await hosts.A.exec(1, async ({ io }) => (await io.fetchSockets()).map((s) => s.id), undefined, { timeout: 8000 });
    assert.deepEqual(ids.sort(), all.map((s) => s.id).sort());
    t.diagnostic(`malformed broadcasts delivered to clients as "i-bad" (not asserted): ${JSON.stringify(bad)}`);
    const afterStats = await redisStats(hosts.A);
    t.diagnostic(`A stats().redis before: ${JSON.stringify(before)}, after: ${JSON.stringify(afterStats)}`);
    assert.ok(afterStats.malformed > before.malformed, "stats().redis.malformed counts the unreadable messages");
  });
});

// ---- g. faults ------------------------------------------------------------------

describe("Redis bridge: faults", { skip: SKIP, timeout: 120_000 }, () => {
  let redis;

  before(async () => {
    assert.ok(redisInstalled(), "redis-server is not installed");
    redis = await startRedis();
  });
  after(async () => {
    if (redis) await redis.stop();
  });

  /**
   * Hosts A, B (ours) and S (stock). `requestsTimeout` applies to every
   * worker (the asker's bound) and to our hubs (the bound of requests from
   * other hosts); `adapterOpts` are further options of our workers.
   */
  async function fleet(t, { requestsTimeout, adapterOpts = {} } = {}) {
    const hosts = {};
    t.after(() => Promise.all(Object.values(hosts).map((h) => h.close())));
    const ours = {
      redis: requestsTimeout ? { requestsTimeout } : {},
      adapterOpts: { ...(requestsTimeout ? { requestsTimeout } : {}), ...adapterOpts },
    };
    hosts.S = await startStockHost({ url: redis.url, requestsTimeout });
    hosts.A = await startOurHost(redis.url, ours);
    hosts.B = await startOurHost(redis.url, ours);
    const C = makeClients();
    const clients = { A: [], B: [], S: [] };
    for (const h of ["A", "B", "S"]) for (const w of [0, 1]) clients[h].push(await C.connect(hosts, h, w));
    const all = [...clients.A, ...clients.B, ...clients.S];
    await waitCrossHost(hosts, ["A", "B", "S"], { "/": all }, { label: C.label });
    return { hosts, C, clients, all };
  }

  it("g1. Redis SIGKILLed: A keeps working locally; Redis back on the same port: the bridge recovers", { timeout: 60_000 }, async (t) => {
    const { hosts, C, clients, all } = await fleet(t, { requestsTimeout: 1500 });
    // Whatever happens here, the next tests get a running Redis.
    t.after(async () => {
      if (!(await redis.ping())) await redis.restart();
    });
    await hosts.A.primaryExec(({ primaryHandle }) => {
      globalThis.redisEvents = [];
      primaryHandle.on("redis", (ev) => globalThis.redisEvents.push(ev));
    });
    await redis.kill();
    await sleep(300);

    // Local broadcasts between A's own workers.
    await expectDelivery({
      all: clients.A,
      expected: clients.A,
      event: "g1-local",
      label: C.label,
      trigger: () => hosts.A.exec(0, ({ io }) => io.emit("g1-local")),
    });
    await expectDelivery({
      all: clients.A,
      expected: [clients.A[0]],
      event: "g1-local-room",
      label: C.label,
      trigger: () => hosts.A.exec(1, ({ io }, id) => io.to(id).emit("g1-local-room"), clients.A[0].id),
    });

    // fetchSockets() on A: settles within 2 s (requestsTimeout 1500).
    const t0 = Date.now();
    const res = await hosts.A.exec(
      0,
      async ({ io }) => {
        try {
          return { ids: (await io.fetchSockets()).map((s) => s.id) };
        } catch (err) {
          return { err: err.message };
        }
      },
      undefined,
      { timeout: 8000 },
    );
    const elapsed = Date.now() - t0;
    t.diagnostic(`fetchSockets() on A with Redis down: ${res.err ? `rejected: ${res.err}` : `resolved with ${res.ids.length} sockets`} after ${elapsed} ms`);
    assert.ok(elapsed < 2000, `fetchSockets() on A with Redis down took ${elapsed} ms`);
    if (!res.err) {
      for (const s of clients.A) assert.ok(res.ids.includes(s.id), `A's local socket ${C.label(s)} missing: ${res.ids}`);
    }
    assert.equal(hosts.A.primaryExit, null, `A's primary exited:\n${hosts.A.output()}`);
    assert.deepEqual(hosts.A.live(), [0, 1]);

    // Redis back: cross-host broadcasts (A -> B, S; B -> A; S -> A, B) work again within ~10 s.
    const back = Date.now();
    await redis.restart();
    await waitCrossHost(hosts, ["A", "B", "S"], { "/": all }, { timeout: 12000, what: "after the Redis restart", label: C.label });
    t.diagnostic(`cross-host broadcasts back ${Date.now() - back} ms after the restart`);
    const ids = await hosts.A.exec(1, async ({ io }) => (await io.fetchSockets()).map((s) => s.id), undefined, { timeout: 8000 });
    assert.deepEqual(ids.sort(), all.map((s) => s.id).sort(), "fetchSockets() from A after the restart");
    const stats = await redisStats(hosts.A);
    t.diagnostic(`A stats().redis after the restart: ${JSON.stringify(stats)}`);
    assert.equal(stats.connected, true);
    assert.ok(stats.disconnects >= 1 && stats.connects >= 2, "stats().redis counts the disconnection and the reconnection");
    assert.ok(stats.droppedWhileDown >= 1, "stats().redis.droppedWhileDown counts the broadcast made while Redis was down");
    // One "redis" event per change of state, however many attempts failed.
    assert.ok(stats.connectFailures >= 1, "reconnection attempts failed while Redis was down");
    const events = await hosts.A.primaryExec(() => globalThis.redisEvents);
    assert.equal(events.length, 2, `events: ${JSON.stringify(events)}`);
    assert.equal(events[0].connected, false);
    assert.match(events[0].reason, /lost the connection/);
    assert.deepEqual(events[1], { connected: true, reason: null });
  });

  it("g2. Redis unreachable at start: the local cluster works", { timeout: 30_000 }, async (t) => {
    const port = await freePort();
    const A = await startOurHost(`redis://127.0.0.1:${port}`, { redis: { requestsTimeout: 1000 } });
    t.after(() => A.close());
    const C = makeClients();
    const clients = [await C.connect({ A }, "A", 0), await C.connect({ A }, "A", 1)];
    await A.execAll(({ io, index }) => io.on("g2", (cb) => cb(index)));
    await expectDelivery({ all: clients, expected: clients, event: "g2-a", label: C.label, trigger: () => A.exec(0, ({ io }) => io.emit("g2-a")) });
    await expectDelivery({
      all: clients,
      expected: [clients[0]],
      event: "g2-b",
      label: C.label,
      trigger: () => A.exec(1, ({ io }, id) => io.to(id).emit("g2-b"), clients[0].id),
    });
    const t0 = Date.now();
    const ids = await A.exec(0, async ({ io }) => (await io.fetchSockets()).map((s) => s.id), undefined, { timeout: 8000 });
    assert.deepEqual(ids.sort(), clients.map((s) => s.id).sort());
    assert.ok(Date.now() - t0 < 2500, `fetchSockets() took ${Date.now() - t0} ms`);
    const sse = await A.exec(
      0,
      ({ io }) => new Promise((resolve) => io.serverSideEmit("g2", (err, r) => resolve({ err: err ? err.message : null, r }))),
      undefined,
      { timeout: 8000 },
    );
    assert.deepEqual(sse, { err: null, r: [1] }, "serverSideEmit with ack within the host");
    const stats = await redisStats(A);
    t.diagnostic(`stats().redis with Redis unreachable: ${JSON.stringify(stats)}`);
    assert.equal(stats.connected, false);
    assert.ok(stats.connectFailures >= 1, "stats().redis.connectFailures");
    assert.equal(A.primaryExit, null, A.output());
    // Redis appears: the bridge connects by itself (backoff at most 5 s).
    await startRedis({ port, t });
    await waitFor(async () => (await redisStats(A)).connected, 10_000, "the bridge connecting once Redis is up");
    assert.equal((await redisStats(A)).connects, 1);
  });

  it("g3. a host SIGKILLed during fetchSockets(): A (partialResults) resolves within requestsTimeout with A's and S's sockets", { timeout: 60_000 }, async (t) => {
    const { hosts, C, clients } = await fleet(t, { requestsTimeout: 1000, adapterOpts: { partialResults: true } });
    // B is frozen (still subscribed: Redis counts it and delivers the request
    // to its connection), the request starts, then B is SIGKILLed before it
    // could answer.
    const pidsB = [hosts.B.child.pid, ...hosts.B.workers.map((w) => w.pid)];
    for (const pid of pidsB) process.kill(pid, "SIGSTOP");
    await sleep(50);
    const t0 = Date.now();
    const pending = hosts.A.exec(
      0,
      async ({ io }) => {
        const started = Date.now();
        try {
          return { ids: (await io.fetchSockets()).map((s) => s.id), ms: Date.now() - started };
        } catch (err) {
          return { err: err.message, ms: Date.now() - started };
        }
      },
      undefined,
      { timeout: 8000 },
    );
    await sleep(150);
    killHost(hosts.B);
    const res = await pending;
    const elapsed = Date.now() - t0;
    t.diagnostic(`fetchSockets() from A with B killed: ${JSON.stringify({ ...res, ids: res.ids && res.ids.length })}, ${elapsed} ms seen from the test`);
    assert.equal(res.err, undefined, `fetchSockets() rejected: ${res.err}`);
    assert.ok(res.ms < 1000 + 500, `fetchSockets() took ${res.ms} ms in the worker (requestsTimeout 1000)`);
    assert.ok(elapsed < 2500, `fetchSockets() took ${elapsed} ms seen from the test (requestsTimeout 1000)`);
    const must = [...clients.A, ...clients.S];
    for (const s of must) assert.ok(res.ids.includes(s.id), `${C.label(s)} missing from fetchSockets(): ${res.ids.length} ids`);
    const known = new Set([...must, ...clients.B].map((s) => s.id));
    for (const id of res.ids) assert.ok(known.has(id), `unknown socket id ${id}`);
    assert.equal(hosts.A.primaryExit, null, hosts.A.output());
  });
});

describe("Redis bridge: connection state recovery across hosts", { skip: SKIP, timeout: 60_000 }, () => {
  it("a broadcast of a stock host missed while disconnected reaches a client of ours on reconnection", T, async (t) => {
    const redis = await startRedis({ t });
    const recovery = { connectionStateRecovery: { maxDisconnectionDuration: 30_000 } };
    const A = await startOurHost(redis.url, { serverOpts: recovery });
    t.after(() => A.close());
    const S = await startStockHost({ url: redis.url });
    t.after(() => S.close());
    await S.execAll(async ({ adapterModule }) => adapterModule.whenSubscribed && adapterModule.whenSubscribed());
    const client = await A.connect(0, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    const got = [];
    client.on("news", (...args) => got.push(args[0]));
    // Live first: broadcasts of S reach the client (once A's bridge is subscribed).
    await waitFor(
      async () => {
        await S.exec(0, ({ io }) => io.emit("news", "live"));
        await sleep(100);
        return got.includes("live");
      },
      10_000,
      "a live broadcast of the stock host",
    );
    // Gone for a moment: the transport closes, the session stays recoverable.
    const reconnected = new Promise((resolve) => client.once("connect", resolve));
    client.io.engine.close();
    await waitFor(() => !client.connected, 3000, "the client noticed the disconnection");
    await S.exec(1, ({ io }) => io.emit("news", "missed"));
    await sleep(200);
    await reconnected;
    assert.equal(client.recovered, true, "the session was recovered");
    await waitFor(() => got.includes("missed"), 3000, "the missed broadcast, replayed").catch(() => {});
    assert.deepEqual(got.filter((x) => x === "missed"), ["missed"], `got: ${got}`);

    // The other way: what A's workers broadcast reaches a stock client with
    // its own arguments only (A's recovery offset stays on A), volatile too.
    const stockClient = await S.connect(0);
    const fromA = [];
    stockClient.on("fromA", (...args) => fromA.push(args));
    await A.exec(1, ({ io }) => io.emit("fromA", "x", 1));
    await A.exec(0, ({ io }) => io.volatile.emit("fromA", "y", 2));
    await waitFor(() => fromA.length >= 2, 3000, "A's broadcasts at the stock client").catch(() => {});
    await sleep(100);
    assert.deepEqual(fromA, [["x", 1], ["y", 2]]);
  });
});
