"use strict";
// The scenario matrix and how one scenario is executed and measured on a
// running cluster (see harness.js). A "group" shares one client topology and
// one fresh cluster per (W, adapter, repetition); its scenarios run in order.

const { cpuSnapshot, cpuBetween, peakRss, resetPeakRss } = require("./proc");
const { Histogram } = require("./stats");
const { sleep } = require("./harness");

const PAYLOADS = [
  { name: "100B str", kind: "str", size: 100 },
  { name: "10KiB str", kind: "str", size: 10 * 1024 },
  { name: "10KiB buf", kind: "buf", size: 10 * 1024 },
];

/** The groups to run for W workers. `quick` shortens durations and counts. */
function buildGroups(W, quick) {
  const D = quick ? 1000 : 2000; // ms per fixed-rate scenario
  const bcast = [];
  for (const p of PAYLOADS) {
    const small = p.size <= 100;
    const payload = { kind: p.kind, size: p.size };
    bcast.push({ id: `bcast ${p.name} burst`, type: "bcast", payload, count: small ? (quick ? 2000 : 5000) : quick ? 200 : 500 });
    // 100 msg/s is where the "adapter hop" (remote minus local p50) is read.
    bcast.push({ id: `bcast ${p.name} @100/s`, type: "bcast", payload, rate: 100, durationMs: D, hop: true });
    const hi = small ? 1000 : 500;
    bcast.push({ id: `bcast ${p.name} @${hi}/s`, type: "bcast", payload, rate: hi, durationMs: D });
  }
  const small = { kind: "str", size: 100 };
  // One delivery per emit: 4× the emits of the broadcast burst for a comparable amount of work.
  bcast.push({ id: "rooms 100B str burst", type: "bcast", payload: small, rooms: 20, count: quick ? 5000 : 20_000 });
  bcast.push({ id: "rooms 100B str @1000/s", type: "bcast", payload: small, rooms: 20, rate: 1000, durationMs: D });

  const steps = [2000, 5000, 10000, 20000, 40000].map((rate) => ({
    id: `all-emit 100B @${rate / 1000}k/s`,
    type: "bcast",
    payload: small,
    allEmit: true,
    rate,
    durationMs: D,
  }));

  const reqs = [];
  for (const op of ["fetchAll", "fetchRoom", "ssea"]) {
    for (const concurrency of [1, 16]) {
      const name = { fetchAll: "fetchSockets() all", fetchRoom: "fetchSockets() 1 room", ssea: "serverSideEmitWithAck" }[op];
      reqs.push({ id: `${name} ${concurrency === 1 ? "seq" : `×${concurrency}`}`, type: "req", op, concurrency, durationMs: D, count: 50_000 });
    }
  }

  const kill = {
    id: "kill: fetchSockets ×8 across SIGSTOP+SIGKILL",
    type: "kill",
    op: "fetchAll",
    concurrency: 8,
    pauseMs: 20, // ~400 req/s offered: a busy app, not a flood
    preMs: 1000,
    stopMs: 1000,
    // Long enough (full run) to see the stock adapter recover: it forgets a
    // dead node only after its 10 s heartbeat timeout.
    windowMs: quick ? 5000 : 12000,
  };

  return [
    { name: "broadcast", clientsPerWorker: 10, rooms: 20, scenarios: bcast },
    { name: "all-emit rates", clientsPerWorker: 1, rooms: 1, scenarios: steps },
    { name: "requests", clientsPerWorker: 10, rooms: 20, scenarios: reqs },
    { name: "kill", clientsPerWorker: 10, rooms: 20, scenarios: [kill] },
  ];
}

let sidSeq = 0;

/** CPU seconds of the primary, every worker still alive and the client processes. */
function resourceSnapshot(cl) {
  return {
    primaryCpu: cpuSnapshot(cl.primary.pid),
    workerCpu: cl.workers.map((w) => cpuSnapshot(w.pid)),
    clientCpu: cl.clients.map((c) => cpuSnapshot(c.pid)),
  };
}
function resetPeaks(cl) {
  resetPeakRss(cl.primary.pid);
  for (const w of cl.workers) resetPeakRss(w.pid);
}
/** Closes a measurement window opened by resourceSnapshot(); returns a function of the work done. */
function resourceWindow(cl, before) {
  const after = resourceSnapshot(cl);
  const rss = cl.workers.map((w) => peakRss(w.pid)).filter((x) => x != null);
  const rssPrimaryMB = peakRss(cl.primary.pid) / 2 ** 20;
  const rssWorkerMaxMB = rss.length ? Math.max(...rss) / 2 ** 20 : null;
  let workers = 0;
  let receivers = 0; // every worker but worker 0, the emitter of single-emitter scenarios
  for (let i = 0; i < after.workerCpu.length; i++) {
    const used = cpuBetween(before.workerCpu[i], after.workerCpu[i]);
    if (used === null) continue;
    workers += used;
    if (i > 0) receivers += used;
  }
  const primary = cpuBetween(before.primaryCpu, after.primaryCpu);
  // The same work with either adapter; shown so that a reader sees how much
  // of the machine is left to the servers.
  let clients = 0;
  for (let i = 0; i < after.clientCpu.length; i++) clients += cpuBetween(before.clientCpu[i], after.clientCpu[i]) || 0;
  // CPU seconds per `per` units of work (deliveries or requests);
  // `remoteUnits`, when given, are the deliveries made by workers 1..W-1.
  return (units, per, remoteUnits) => ({
    cpuPrimary: units > 0 ? (primary * per) / units : null,
    cpuWorkers: units > 0 ? (workers * per) / units : null,
    cpuReceivers: remoteUnits > 0 ? (receivers * per) / remoteUnits : null,
    cpuClients: units > 0 ? (clients * per) / units : null,
    rssPrimaryMB,
    rssWorkerMaxMB,
  });
}

/**
 * Waits until the clients have `expected` unique deliveries, or nothing new
 * arrived for quietMs, or capMs passed. Returns whether all arrived.
 */
async function drain(cl, expected, quietMs, capMs) {
  const t0 = Date.now();
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const st = await Promise.all(cl.clients.map((c) => c.peer.call("status", {}, capMs + 5000)));
    const got = st.reduce((a, s) => a + s.unique, 0);
    if (got >= expected) return true;
    if (got !== last) {
      last = got;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > quietMs) return false;
    if (Date.now() - t0 > capMs) return false;
    await sleep(50);
  }
}

/** Broadcast scenarios: (a), (b) and (c). */
async function runBcast(cl, sc, ctx) {
  const sid = ++sidSeq;
  const emitters = sc.allEmit ? cl.workers : [cl.workers[0]];
  const rate = sc.rate ? sc.rate / emitters.length : 0;
  const count = sc.rate ? Math.ceil((rate * sc.durationMs) / 1000) + 1 : sc.count;
  await Promise.all(cl.clients.map((c) => c.peer.call("arm", { sid, ...sc.payload, maxCount: count, W: cl.W })));
  resetPeaks(cl);
  const before = resourceSnapshot(cl);
  const emitTimeout = (sc.durationMs || 0) + 60_000;
  const em = await Promise.all(
    emitters.map((w) => w.peer.call("emit", { sid, ...sc.payload, count, rate, durationMs: sc.durationMs, rooms: sc.rooms, batch: 100 }, emitTimeout)),
  );
  // Expected deliveries: every socket gets every message, or only its room's.
  let expected = 0;
  for (const e of em) {
    if (e.perRoom) for (const t of cl.layout) expected += e.perRoom[t.room] || 0;
    else expected += e.emitted * cl.layout.length;
  }
  const complete = await drain(cl, expected, ctx.quick ? 1000 : 1500, ctx.quick ? 5000 : 10_000);
  const resources = resourceWindow(cl, before);
  const col = await Promise.all(cl.clients.map((c) => c.peer.call("collect")));
  const local = new Histogram();
  const remote = new Histogram();
  const sum = (k) => col.reduce((a, c) => a + c[k], 0);
  for (const c of col) {
    local.merge(Histogram.fromJSON(c.local));
    remote.merge(Histogram.fromJSON(c.remote));
  }
  const unique = sum("unique");
  const t0 = Math.min(...em.map((e) => e.startNs));
  const tLast = Math.max(...col.map((c) => c.last));
  const emitted = em.reduce((a, e) => a + e.emitted, 0);
  const emitSpan = Math.max(...em.map((e) => e.endNs - e.startNs)) / 1e9;
  const ms = (us) => (us == null ? null : us / 1e3);
  return {
    deliveriesPerSec: unique && tLast > t0 ? unique / ((tLast - t0) / 1e9) : 0,
    emitRate: sc.rate ? emitted / emitSpan : null,
    deliveries: unique,
    expected,
    lost: Math.max(0, expected - unique),
    wrongType: sum("wrongType"),
    wrongSize: sum("wrongSize"),
    dup: sum("dup"),
    stale: sum("stale"),
    corrupt: sum("corrupt"),
    complete,
    remoteP50ms: ms(remote.quantile(0.5)),
    remoteP99ms: ms(remote.quantile(0.99)),
    localP50ms: ms(local.quantile(0.5)),
    localP99ms: ms(local.quantile(0.99)),
    hopUs: sc.hop && remote.n && local.n ? remote.quantile(0.5) - local.quantile(0.5) : null,
    // Only worker 0 emits (except in all-emit): the others' CPU is the cost
    // of receiving, and what they deliver is every remote delivery.
    ...resources(unique, 10_000, sc.allEmit ? 0 : remote.n),
  };
}

/** Request scenarios (d), issued from worker 0. */
async function runReq(cl, sc) {
  let expect = null;
  const K = cl.layout.length;
  if (sc.op === "fetchAll") expect = K;
  if (sc.op === "fetchRoom") expect = cl.layout.filter((t) => t.room === 0).length;
  if (sc.op === "ssea") expect = cl.W - 1;
  resetPeaks(cl);
  const before = resourceSnapshot(cl);
  const r = await cl.workers[0].peer.call(
    "request",
    { op: sc.op, room: 0, concurrency: sc.concurrency, count: sc.count, durationMs: sc.durationMs, expect },
    sc.durationMs + 30_000,
  );
  const resources = resourceWindow(cl, before);
  const n = r.ok + r.failed;
  const h = Histogram.fromJSON(r.hist);
  return {
    reqPerSec: n / ((r.endNs - r.startNs) / 1e9),
    requests: n,
    failed: r.failed,
    incomplete: r.incomplete,
    lastError: r.lastError,
    reqP50ms: h.quantile(0.5) / 1e3,
    reqP99ms: h.quantile(0.99) / 1e3,
    ...resources(n, 1000),
  };
}

/** Scenario (e): worker W-1 is SIGSTOPped, then SIGKILLed, under request load from worker 0. */
async function runKill(cl, sc) {
  const victim = cl.workers[cl.W - 1];
  const durationMs = sc.preMs + sc.stopMs + sc.windowMs;
  await cl.workers[0].peer.call("probeStart", { op: sc.op, concurrency: sc.concurrency, pauseMs: sc.pauseMs, count: 1e9, durationMs });
  await sleep(sc.preMs);
  process.kill(victim.pid, "SIGSTOP");
  await sleep(sc.stopMs);
  const killNs = Number(process.hrtime.bigint()); // same CLOCK_MONOTONIC as the worker's
  process.kill(victim.pid, "SIGKILL");
  return cl.workers[0].peer.call("probeResult", { killNs, windowMs: sc.windowMs }, durationMs + 30_000);
}

/** Unmeasured warm-up so JIT and connection buffers are hot before the first scenario. */
async function warmup(cl, ctx) {
  await runBcast(cl, { type: "bcast", payload: { kind: "str", size: 100 }, count: 300 }, ctx);
  // Room broadcasts, and messages that arrive one at a time (fixed rates)
  // rather than in batches (bursts), take other code paths in both adapters:
  // warm those too, or the first scenarios measure the JIT compiling them.
  await runBcast(cl, { type: "bcast", payload: { kind: "str", size: 100 }, rooms: 20, count: 2000 }, ctx);
  await runBcast(cl, { type: "bcast", payload: { kind: "str", size: 100 }, rate: 1000, durationMs: 1500 }, ctx);
  await cl.workers[0].peer.call("request", { op: "fetchAll", concurrency: 4, count: 100, durationMs: 2000 }, 20_000);
}

function runScenario(cl, sc, ctx) {
  if (sc.type === "bcast") return runBcast(cl, sc, ctx);
  if (sc.type === "req") return runReq(cl, sc, ctx);
  if (sc.type === "kill") return runKill(cl, sc, ctx);
  throw new Error(`unknown scenario type ${sc.type}`);
}

module.exports = { buildGroups, runScenario, warmup };
