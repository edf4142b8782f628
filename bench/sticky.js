"use strict";
// Sticky balancing, side by side: this package's balancer in the primary
// (setupPrimary({ sticky }), Rust, on its own thread, hands TCP connections to
// the workers with SCM_RIGHTS) against @socket.io/sticky (setupMaster() on a
// Node http.Server in the primary: bodiless requests' sockets go to a worker
// over IPC, requests with a body — polling POSTs — are proxied chunk by chunk
// through the primary's JavaScript).
//
//   node bench/sticky.js [--sessions 1000] [--concurrency 50] [--clients 50] [--rounds 40]
//                        [--reps 3] [--warmup 1] [--workers 2]            (~1 min on 2 cores)
//   npm run bench:sticky -- --sessions 200 --clients 10 --rounds 10 --reps 1 --warmup 0   # quick
//
// Two clusters, "rs" and "stock", both with `--workers` workers running
// socket.io with THIS package's adapter (require(ROOT): setupPrimary() /
// createAdapter()), so that only the balancer differs. Both listen on
// 127.0.0.1 on a free port, run side by side in the same run, and are
// measured in turn, the order alternating per repetition (stock first in even
// ones, rs first in odd ones), after `--warmup` unmeasured full-size reps of
// each (without one, the first measured reps run up to 2-3x slower: JIT).
// Clients are socket.io-client in this process, polling only (in Node,
// socket.io-client opens a new TCP connection for every HTTP request, so a
// request is a connection to the primary).
//
// 1. sessions: `--sessions` clients, `--concurrency` at a time; each connects,
//    does one emitWithAck("echo", i) and closes. Reported: sessions/s, failed
//    sessions (connect_error, "Session ID unknown", ack timeout, ...).
// 2. rounds: `--clients` connected clients each do `--rounds` sequential
//    emitWithAck("echo", n) (a POST and a GET poll per round trip). Reported:
//    round trips/s, p50 / p99 round-trip latency, failed round trips.
// For each phase: the connections the primary accepted (rs: the balancer's
// stats().sticky.connections; stock: 'connection' events of its http.Server,
// both asked over IPC outside the measured window), and the CPU time of the
// primary and of the workers (every thread, /proc schedstat read from this
// process: bench/proc.js) per connection, plus the primary's CPU by thread
// name (node = main thread, sio-cluster-hub = the adapter's hub,
// sio-cluster-sti = the balancer). The issue's target: rs primary CPU per
// request <= 1/10 of stock's.
//
// Output: a table on stdout (per-rep values, medians, rs/stock ratios; failure
// counts are summed), progress on stderr, and bench/results/sticky.json
// ({ meta, results: every rep's raw figures, summary }). Every process ends by
// itself: primaries exit (killing their workers) when this process goes away,
// and every role has a maximum lifetime.

const cluster = require("node:cluster");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const { cpuSnapshot, cpuBetween, numericFlags } = require("./proc");
const { median, fmtFixed: fmt } = require("./stats");

const ROOT = path.join(__dirname, "..");
const SETUPS = ["stock", "rs"];
const ACK_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
// Nothing here runs longer: a stuck run ends instead of hanging.
const MAX_LIFETIME_MS = 20 * 60_000;

function args() {
  return numericFlags({ sessions: 1000, concurrency: 50, clients: 50, rounds: 40, reps: 3, warmup: 1, workers: 2 });
}

// ---- roles -------------------------------------------------------------------

/** Cluster primary: env BENCH_STICKY = "rs" | "stock", BENCH_WORKERS. */
function runPrimary() {
  const setup = process.env.BENCH_STICKY;
  const count = Number(process.env.BENCH_WORKERS) || 2;
  const { setupPrimary } = require(ROOT);
  let handle;
  let port;
  let connections = 0; // stock: TCP connections its http.Server accepted
  if (setup === "stock") {
    const { setupMaster } = require("@socket.io/sticky");
    // @socket.io/sticky sends its messages with the advanced serialization.
    cluster.setupPrimary({ serialization: "advanced" });
    handle = setupPrimary();
    const httpServer = http.createServer();
    setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
    httpServer.on("connection", () => connections++);
    httpServer.listen(0, "127.0.0.1", () => {
      port = httpServer.address().port;
      maybeReady();
    });
  } else {
    handle = setupPrimary({ sticky: { port: 0, host: "127.0.0.1" } });
    port = handle.sticky.port;
  }
  const serving = new Set();
  let ready = false;
  let stopping = false;
  function maybeReady() {
    if (ready || port === undefined || serving.size < count) return;
    ready = true;
    process.send({ ready: port, pids: [...serving] });
  }
  for (let i = 0; i < count; i++) {
    const w = cluster.fork();
    w.on("message", (m) => {
      if (m && m.serving) {
        serving.add(w.process.pid);
        maybeReady();
      }
    });
    w.on("exit", (code, signal) => {
      serving.delete(w.process.pid);
      if (!stopping) console.error(`[${setup} primary] worker ${w.process.pid} exited (${signal || code})`);
    });
  }
  process.on("message", (m) => {
    if (m.cmd !== "count") return;
    const sticky = setup === "rs" ? handle.stats().sticky : null;
    process.send({ id: m.id, connections: sticky ? sticky.connections : connections, sticky });
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill("SIGKILL");
    process.exit(0);
  };
  process.on("disconnect", stop);
  setTimeout(stop, MAX_LIFETIME_MS).unref();
}

function runWorker() {
  const { Server } = require("socket.io");
  const { createAdapter } = require(ROOT);
  // No listen(): the balancer brings the connections.
  const httpServer = http.createServer();
  const io = new Server(httpServer);
  io.adapter(createAdapter());
  if (process.env.BENCH_STICKY === "stock") require("@socket.io/sticky").setupWorker(io);
  io.on("connection", (socket) => {
    socket.on("echo", (v, cb) => cb(v));
  });
  process.send({ serving: true });
  // The cluster module ends a worker whose primary went away; this is a backstop.
  setTimeout(() => process.exit(0), MAX_LIFETIME_MS + 60_000).unref();
}

// ---- the driver: clusters ------------------------------------------------------

async function startCluster(setup, workers) {
  const { fork } = require("node:child_process");
  const child = fork(__filename, ["--role-primary"], {
    env: { ...process.env, BENCH_STICKY: setup, BENCH_WORKERS: String(workers) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let nextId = 1;
  const waiting = new Map();
  child.on("message", (m) => {
    const w = m && waiting.get(m.id);
    if (w) {
      waiting.delete(m.id);
      w(m);
    }
  });
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${setup} cluster not ready in 30 s`)), 30_000);
    child.once("exit", (code) => reject(new Error(`${setup} primary exited with ${code}`)));
    child.on("message", (m) => {
      if (m && m.ready) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
  return {
    setup,
    pid: child.pid,
    pids: first.pids,
    url: `http://127.0.0.1:${first.ready}`,
    /** The primary's connection count (and rs balancer counters). */
    count() {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${setup} primary did not answer`)), 20_000);
        waiting.set(id, (m) => {
          clearTimeout(t);
          resolve(m);
        });
        child.send({ cmd: "count", id });
      });
    },
    stop() {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.disconnect();
        setTimeout(() => child.kill("SIGKILL"), 3_000).unref();
      });
    },
  };
}

/** Run time (ns) and name of each thread of `pid`: where the primary's CPU goes. */
function threadTimes(pid) {
  const out = new Map();
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const tid of tids) {
    try {
      const ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      out.set(tid, { ns, name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() });
    } catch {}
  }
  return out;
}

/** CPU seconds per thread name between two threadTimes() (threads of one name summed). */
function threadCpuByName(a, b) {
  const out = {};
  for (const [tid, t] of b) {
    const s = (t.ns - ((a.get(tid) || {}).ns || 0)) / 1e9;
    out[t.name] = (out[t.name] || 0) + s;
  }
  return out;
}

/** Counters at the start of a measured window: the IPC question first, then CPU. */
async function windowStart(c) {
  const count = await c.count();
  return {
    count,
    threads: threadTimes(c.pid),
    primary: cpuSnapshot(c.pid),
    workers: c.pids.map(cpuSnapshot),
    driver: cpuSnapshot(process.pid),
    t: performance.now(),
  };
}

/** ... and at its end: CPU first, then the IPC question. */
async function windowEnd(c, a) {
  const primary = cpuSnapshot(c.pid);
  const threads = threadTimes(c.pid);
  const workers = c.pids.map(cpuSnapshot);
  const driver = cpuSnapshot(process.pid);
  const count = await c.count();
  let workersCpu = 0;
  for (const [i, w] of workers.entries()) {
    const s = cpuBetween(a.workers[i], w);
    workersCpu = s === null || workersCpu === null ? null : workersCpu + s;
  }
  const diff = {};
  if (a.count.sticky) {
    for (const [k, v] of Object.entries(count.sticky)) if (typeof v === "number") diff[k] = v - a.count.sticky[k];
  }
  return {
    connections: count.connections - a.count.connections,
    primaryCpu: cpuBetween(a.primary, primary),
    workersCpu,
    driverCpu: cpuBetween(a.driver, driver),
    primaryThreads: threadCpuByName(a.threads, threads),
    sticky: a.count.sticky ? diff : null,
  };
}

// ---- the driver: clients -------------------------------------------------------

function clientOptions() {
  return { transports: ["polling"], forceNew: true, reconnection: false, timeout: CONNECT_TIMEOUT_MS };
}

/** A short name for an engine / socket.io error, with the HTTP answer when there is one. */
function describe(err) {
  const ctx = err && err.context;
  const text = ctx && typeof ctx.responseText === "string" ? ctx.responseText : "";
  if (text.includes("Session ID unknown")) return "Session ID unknown";
  let s = String((err && err.message) || err);
  if (err && err.description !== undefined) {
    const d = err.description;
    s += ` (${typeof d === "object" && d !== null ? d.message || d.code || JSON.stringify(d) : d})`;
  }
  if (text) s += `: ${text.slice(0, 60)}`;
  return s;
}

function tally(map, key) {
  map[key] = (map[key] || 0) + 1;
}

/** Connects one client; resolves with it, or rejects with the connect_error. */
function connectClient(url, errors) {
  const { io: connect } = require("socket.io-client");
  const s = connect(url, clientOptions());
  // Every engine error (polling request failures, with the server's answer).
  s.io.on("error", (err) => tally(errors, describe(err)));
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", (err) => {
      s.close();
      const e = new Error(`connect_error: ${describe(err)}`);
      e.connectError = true;
      reject(e);
    });
  });
}

/** Phase 1: `n` sessions, `concurrency` at a time, each connect + one echo + close. */
async function sessionsPhase(c, n, concurrency, measured = true) {
  const out = { sessions: n, ok: 0, failed: 0, connectErrors: 0, ackFailures: 0, sidUnknown: 0, errors: {} };
  const a = measured ? await windowStart(c) : null;
  const t0 = performance.now();
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      let s = null;
      try {
        s = await connectClient(c.url, out.errors);
        const v = await s.timeout(ACK_TIMEOUT_MS).emitWithAck("echo", i);
        if (v !== i) throw new Error(`echo answered ${v} for ${i}`);
        out.ok++;
      } catch (err) {
        out.failed++;
        if (err.connectError) out.connectErrors++;
        else out.ackFailures++;
        tally(out.errors, err.message);
      } finally {
        if (s) s.close();
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  const seconds = (performance.now() - t0) / 1000;
  // Let the last closes (a POST each) reach the servers before reading counters.
  await sleep(300);
  out.sidUnknown = out.errors["Session ID unknown"] || 0;
  out.seconds = seconds;
  out.rate = out.ok / seconds;
  if (measured) Object.assign(out, perConnection(await windowEnd(c, a), out.ok));
  return out;
}

/** Phase 2: `clients` connected clients, each `rounds` sequential echoes. */
async function roundsPhase(c, clients, rounds, measured = true) {
  const out = { clients, rounds, roundTrips: 0, failed: 0, connectErrors: 0, sidUnknown: 0, errors: {} };
  const sockets = [];
  await Promise.all(
    Array.from({ length: clients }, () =>
      connectClient(c.url, out.errors).then(
        (s) => sockets.push(s),
        (err) => {
          out.connectErrors++;
          tally(out.errors, err.message);
        },
      ),
    ),
  );
  // Every client has its first GET poll waiting before the window opens.
  await sleep(200);
  const a = measured ? await windowStart(c) : null;
  const latencies = [];
  const t0 = performance.now();
  await Promise.all(
    sockets.map(async (s) => {
      for (let r = 0; r < rounds; r++) {
        const t = performance.now();
        try {
          const v = await s.timeout(ACK_TIMEOUT_MS).emitWithAck("echo", r);
          if (v !== r) throw new Error(`echo answered ${v} for ${r}`);
          latencies.push(performance.now() - t);
        } catch (err) {
          // The rest of this client's rounds fail with it.
          out.failed += rounds - r;
          tally(out.errors, err.message);
          return;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  out.failed += out.connectErrors * rounds;
  const w = measured ? await windowEnd(c, a) : null;
  for (const s of sockets) s.close();
  await sleep(300);
  out.roundTrips = latencies.length;
  out.sidUnknown = out.errors["Session ID unknown"] || 0;
  out.seconds = seconds;
  out.rate = latencies.length / seconds;
  out.p50 = percentile(latencies, 50);
  out.p99 = percentile(latencies, 99);
  if (measured) Object.assign(out, perConnection(w, latencies.length));
  return out;
}

/** CPU per connection the primary accepted (µs), and connections per unit of work. */
function perConnection(w, units) {
  const per = (cpu) => (cpu === null || w.connections <= 0 ? null : (cpu * 1e6) / w.connections);
  return {
    connections: w.connections,
    connectionsPerUnit: units > 0 ? w.connections / units : null,
    primaryCpuS: w.primaryCpu,
    workersCpuS: w.workersCpu,
    driverCpuS: w.driverCpu,
    primaryUsPerReq: per(w.primaryCpu),
    workersUsPerReq: per(w.workersCpu),
    // µs per request by thread name of the primary (main thread "node", the
    // hub "sio-cluster-hub", the balancer "sio-cluster-sti", libuv, V8 ...).
    primaryThreadsUsPerReq: Object.fromEntries(Object.entries(w.primaryThreads).filter(([, s]) => s > 0).map(([k, s]) => [k, per(s)])),
    sticky: w.sticky,
  };
}

// ---- the driver: the run ---------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

// [label, phase, key, how to sum up the reps ("median" or "sum")]
const METRICS = [
  ["sessions/s", "sessions", "rate", "median"],
  ["failed sessions", "sessions", "failed", "sum"],
  ["  connect_error", "sessions", "connectErrors", "sum"],
  ["  Session ID unknown (engine errors)", "sessions", "sidUnknown", "sum"],
  ["primary connections / session", "sessions", "connectionsPerUnit", "median"],
  ["primary CPU µs / request", "sessions", "primaryUsPerReq", "median"],
  ["workers CPU µs / request", "sessions", "workersUsPerReq", "median"],
  ["round trips/s", "rounds", "rate", "median"],
  ["round trip p50 (ms)", "rounds", "p50", "median"],
  ["round trip p99 (ms)", "rounds", "p99", "median"],
  ["failed round trips", "rounds", "failed", "sum"],
  ["  Session ID unknown (engine errors)", "rounds", "sidUnknown", "sum"],
  ["primary connections / round trip", "rounds", "connectionsPerUnit", "median"],
  ["primary CPU µs / request", "rounds", "primaryUsPerReq", "median"],
  ["workers CPU µs / request", "rounds", "workersUsPerReq", "median"],
  ["primary CPU µs / request, both phases", "total", "primaryUsPerReq", "median"],
  ["workers CPU µs / request, both phases", "total", "workersUsPerReq", "median"],
];

/** Both phases of one (rep, setup) together: CPU over all the connections. */
function totals(r) {
  const conns = r.sessions.connections + r.rounds.connections;
  const add = (k) => (r.sessions[k] === null || r.rounds[k] === null ? null : r.sessions[k] + r.rounds[k]);
  const per = (cpu) => (cpu === null || conns <= 0 ? null : (cpu * 1e6) / conns);
  return { connections: conns, primaryUsPerReq: per(add("primaryCpuS")), workersUsPerReq: per(add("workersCpuS")) };
}

async function bench() {
  const started = Date.now();
  const opts = args();
  const clusters = {};
  for (const setup of SETUPS) clusters[setup] = await startCluster(setup, opts.workers);
  const results = [];
  try {
    // Warm-up, `--warmup` unmeasured full-size reps of each (JIT of the
    // primaries, workers and clients: the first reps run measurably slower).
    for (let i = 0; i < opts.warmup; i++) {
      for (const setup of SETUPS) {
        await sessionsPhase(clusters[setup], opts.sessions, opts.concurrency, false);
        await roundsPhase(clusters[setup], opts.clients, opts.rounds, false);
      }
    }
    for (let rep = 0; rep < opts.reps; rep++) {
      const order = rep % 2 === 0 ? SETUPS : [...SETUPS].reverse();
      for (const setup of order) {
        const c = clusters[setup];
        const sessions = await sessionsPhase(c, opts.sessions, opts.concurrency);
        const rounds = await roundsPhase(c, opts.clients, opts.rounds);
        const r = { rep, setup, sessions, rounds };
        r.total = totals(r);
        results.push(r);
        console.error(
          `rep ${rep + 1}/${opts.reps} ${setup}: ${fmt(sessions.rate)} sessions/s (${sessions.failed} failed), ` +
            `${fmt(rounds.rate)} round trips/s p50 ${fmt(rounds.p50)} ms p99 ${fmt(rounds.p99)} ms (${rounds.failed} failed), ` +
            `primary ${fmt(r.total.primaryUsPerReq)} µs/request`,
        );
      }
    }
  } finally {
    await Promise.all(SETUPS.map((s) => clusters[s].stop()));
  }

  // ---- report
  const summary = { stock: {}, rs: {}, ratio: {} };
  const rows = [];
  for (const [label, phase, key, how] of METRICS) {
    const per = {};
    const agg = {};
    for (const setup of SETUPS) {
      per[setup] = results.filter((r) => r.setup === setup).map((r) => r[phase][key]);
      agg[setup] = how === "sum" ? per[setup].reduce((n, x) => n + (x || 0), 0) : median(per[setup]);
      summary[setup][`${phase}.${key}`] = agg[setup];
    }
    const ratio = how === "median" && agg.stock > 0 ? agg.rs / agg.stock : NaN;
    if (how === "median") summary.ratio[`${phase}.${key}`] = ratio;
    rows.push({ label, phase, how, per, agg, ratio });
  }
  const errors = {};
  for (const setup of SETUPS) {
    errors[setup] = {};
    for (const r of results.filter((x) => x.setup === setup)) {
      for (const phase of ["sessions", "rounds"]) {
        for (const [k, v] of Object.entries(r[phase].errors)) errors[setup][`${phase}: ${k}`] = (errors[setup][`${phase}: ${k}`] || 0) + v;
      }
    }
  }
  const stickyCounters = {};
  for (const r of results.filter((x) => x.setup === "rs")) {
    for (const phase of ["sessions", "rounds"]) {
      for (const [k, v] of Object.entries(r[phase].sticky || {})) stickyCounters[k] = (stickyCounters[k] || 0) + v;
    }
  }

  const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  console.log(
    `sticky bench: W=${opts.workers}, loopback, polling only; sessions: ${opts.sessions} (${opts.concurrency} at a time, connect + 1 echo + close); ` +
      `rounds: ${opts.clients} clients × ${opts.rounds} sequential echoes; ${opts.reps} reps, order alternating (medians; failures summed)`,
  );
  console.log(`stock = @socket.io/sticky ${pkgVersion("@socket.io/sticky")} (least-connection); rs = setupPrimary({ sticky }); both with this package's adapter`);
  console.log("| phase | metric | stock per rep | stock | rs per rep | rs | rs/stock |");
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const f = r.how === "sum" ? (x) => String(x) : fmt;
    const reps = (s) => r.per[s].map(f).join(" / ");
    const ratio = Number.isFinite(r.ratio) ? `×${r.ratio < 0.1 ? r.ratio.toFixed(3) : r.ratio.toFixed(2)}` : "–";
    console.log(`| ${r.phase} | ${r.label} | ${reps("stock")} | ${f(r.agg.stock)} | ${reps("rs")} | ${f(r.agg.rs)} | ${ratio} |`);
  }
  const target = summary.ratio["total.primaryUsPerReq"];
  console.log(
    `primary CPU per request, rs/stock: sessions ×${fmt(summary.ratio["sessions.primaryUsPerReq"])}, rounds ×${fmt(summary.ratio["rounds.primaryUsPerReq"])}, ` +
      `both ×${fmt(target)} — target ≤ ×0.10: ${Number.isFinite(target) ? (target <= 0.1 ? "met" : "NOT met") : "unknown"}`,
  );
  for (const setup of SETUPS) {
    const names = new Set();
    const mine = results.filter((r) => r.setup === setup);
    for (const r of mine) for (const ph of ["sessions", "rounds"]) for (const k of Object.keys(r[ph].primaryThreadsUsPerReq)) names.add(k);
    const parts = [...names]
      .map((k) => [k, median(mine.flatMap((r) => ["sessions", "rounds"].map((ph) => r[ph].primaryThreadsUsPerReq[k] || 0)))])
      .filter(([, v]) => v >= 0.05)
      .sort((x, y) => y[1] - x[1]);
    summary[setup].primaryThreadsUsPerReq = Object.fromEntries(parts);
    console.log(`${setup} primary CPU µs / request by thread (median over phases and reps): ${parts.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}`);
  }
  console.log(`rs balancer counters over the measured phases: ${JSON.stringify(stickyCounters)}`);
  for (const setup of SETUPS) {
    const e = Object.entries(errors[setup]);
    console.log(`${setup} errors seen: ${e.length ? e.map(([k, v]) => `${k} ×${v}`).join("; ") : "none"}`);
  }

  const meta = {
    date: new Date(started).toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    platform: `${os.type()} ${os.release()}`,
    flags: opts,
    setups: { stock: `@socket.io/sticky ${pkgVersion("@socket.io/sticky")}, loadBalancingMethod least-connection`, rs: "setupPrimary({ sticky })" },
    socketio: pkgVersion("socket.io"),
    socketioClient: pkgVersion("socket.io-client"),
    elapsedSec: (Date.now() - started) / 1000,
  };
  const out = path.join(__dirname, "results");
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(
    path.join(out, "sticky.json"),
    JSON.stringify({ meta, results, summary: { ...summary, errors, stickyCounters } }, null, 2) + "\n",
  );
  console.error(`wrote ${path.relative(process.cwd(), path.join(out, "sticky.json"))} (${meta.elapsedSec.toFixed(0)} s)`);
}

// Workers are forked with the primary's arguments: check for them first.
if (cluster.isWorker) runWorker();
else if (process.argv.includes("--role-primary")) runPrimary();
else {
  setTimeout(() => {
    console.error(`sticky bench: still running after ${MAX_LIFETIME_MS / 60_000} min, giving up`);
    process.exit(1);
  }, MAX_LIFETIME_MS).unref();
  bench().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
