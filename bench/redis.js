"use strict";
// Several hosts over Redis, side by side: this package's Redis bridge (the hub
// of each host is its only Redis client: setupPrimary({ redis: { url } }),
// workers keep createAdapter() of this package) against what users run today,
// @socket.io/redis-adapter 8.x in every worker (its own pub + sub redis@4
// clients, createAdapter(pub, sub)).
//
//   node bench/redis.js [--rounds 5] [--warmup 1] [--rate 1000] [--ms 3000] [--clients 10] [--workers 2]
//   node bench/redis.js --quick        # 1 round each, 1 s of broadcasts: a smoke test (~30 s)
//   npm run bench:redis
//
// One redis-server (own port, loopback, no persistence; started here, dies with
// this process). Two scenarios, both up for the whole run, each with its own
// channel prefix so they do not hear each other:
//   ours   2 hosts; a host = a primary calling setupPrimary({ redis: { url, key } })
//          and forking `--workers` workers with this package's createAdapter();
//   stock  2 hosts; a host = a plain node:cluster primary forking `--workers`
//          workers, each with createAdapter(pub, sub) of @socket.io/redis-adapter
//          (pub = createClient({ url }), sub = pub.duplicate(), both connected
//          before the adapter is created).
// Every worker runs socket.io 4.8 (WebSocket only) on its own loopback port;
// `--clients` socket.io-client sockets connect to every worker (one client
// process per host and scenario). A "host" is a process tree: all of it runs on
// this machine, so Redis is reached over loopback.
//
// A round: worker 0 of host A sends io.emit("m", round, seq, tNs, 100 B string)
// at `--rate` per second for `--ms` (tNs = CLOCK_MONOTONIC ns, the same clock in
// every process on Linux); the round ends when every socket has every message,
// or 1.5 s without progress (10 s cap). Rounds alternate between the scenarios
// (stock first in even rounds, ours first in odd ones), after `--warmup`
// unmeasured full-length rounds of each (JIT; without one the first measured
// round's latency tail is several times the others'). Measured per round, over emission through drain:
//   - Redis connections per host: CLIENT LIST entries whose client-side port
//     belongs to a socket of the host's processes (/proc/<pid>/fd + /proc/net/tcp);
//     this driver's own measuring connection is excluded.
//   - Redis egress per broadcast: INFO stats total_net_output_bytes, after −
//     before − the size of the "before" INFO reply itself, ÷ broadcasts sent.
//     The other scenario is idle meanwhile (ours' hubs ask PUBSUB NUMSUB /
//     CHANNELS once a second: the idle-window figure in the JSON bounds that).
//   - CPU (every thread, /proc schedstat, bench/proc.js) of the primaries, the
//     workers, the client processes and redis-server, per delivery (unique
//     (socket, message) pairs received over all sockets of both hosts), and
//     redis-server's per broadcast.
//   - latency, receive − send, of the sockets on host B (the cross-host hop),
//     p50 / p99; also the sockets of host A's other workers (the in-host hop).
//   - delivered / expected (duplicates and messages of other rounds counted apart).
//   - ours: stats().redis deltas (published, received, unconvertible, malformed, ...).
// Targets (the issue): connections per host 2 (stock 2·W), egress per broadcast
// ≤ 1/W of stock's, cross-host p99 no worse than stock's.
//
// Output: a table on stdout (medians over rounds, ours/stock ratios), progress
// on stderr, bench/results/redis.json ({ meta, results: every round's figures,
// summary }). Every process ends by itself: redis-server runs under
// `setpriv --pdeathsig KILL`, primaries and clients exit when this process goes
// away (their IPC channel closes), workers with their primary, and every role
// has a maximum lifetime.

const cluster = require("node:cluster");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { fork } = require("node:child_process");
const { cpuSnapshot, cpuBetween, isAlive, numericFlags } = require("./proc");
const { Histogram, median, fmtFixed } = require("./stats");
const { startRedis: startRedisServer, parseResp, encodeResp, REDIS_SERVER } = require("../__test__/helpers/redis-server");

const ROOT = path.join(__dirname, "..");
const SCENARIOS = ["stock", "ours"];
const HOSTS = ["A", "B"];
// Channel prefixes of equal length, so that the messages of both scenarios are the same size on the wire.
const KEYS = { ours: "bench-rs", stock: "bench-js" };
const PAYLOAD = "x".repeat(100);
const MAX_LIFETIME_MS = 20 * 60_000;
const nowNs = () => Number(process.hrtime.bigint());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function args() {
  const quick = process.argv.includes("--quick");
  const o = numericFlags(
    quick
      ? { rounds: 1, warmup: 1, rate: 1000, ms: 1000, clients: 10, workers: 2 }
      : { rounds: 5, warmup: 1, rate: 1000, ms: 3000, clients: 10, workers: 2 },
  );
  o.quick = quick;
  return o;
}

// ---- roles: primary and workers ------------------------------------------------------

/** Cluster primary. env: BENCH_REDIS_SCENARIO, BENCH_REDIS_HOST, BENCH_REDIS_URL, BENCH_REDIS_KEY, BENCH_WORKERS. */
function runPrimary() {
  const scenario = process.env.BENCH_REDIS_SCENARIO;
  const W = Number(process.env.BENCH_WORKERS);
  let handle = null;
  if (scenario === "ours") {
    handle = require(ROOT).setupPrimary({ redis: { url: process.env.BENCH_REDIS_URL, key: process.env.BENCH_REDIS_KEY } });
  }
  const workers = [];
  const ports = [];
  let stopping = false;
  for (let i = 0; i < W; i++) {
    const w = cluster.fork({ BENCH_WORKER_IDX: String(i) });
    workers.push(w);
    w.on("message", (m) => {
      if (m && m.listening) {
        ports[i] = m.listening;
        if (ports.filter(Boolean).length === W) process.send({ ready: true, ports, pids: workers.map((x) => x.process.pid) });
      } else if (m && m.id !== undefined) process.send(m); // an answer to the driver
    });
    w.on("exit", (code, signal) => {
      if (!stopping) console.error(`[${scenario} ${process.env.BENCH_REDIS_HOST}] worker ${i} exited (${signal || code})`);
    });
  }
  process.on("message", (m) => {
    if (m.cmd === "stats") {
      const s = handle ? handle.stats() : null;
      process.send({ id: m.id, redis: s ? s.redis || null : null, peers: s && s.peers ? s.peers.length : null });
    } else if (m.cmd === "emit") workers[0].send(m);
  });
  const stop = () => {
    stopping = true;
    for (const w of workers) {
      try {
        w.process.kill("SIGKILL");
      } catch {}
    }
    process.exit(0);
  };
  process.on("disconnect", stop);
  process.on("SIGTERM", stop);
  setTimeout(stop, MAX_LIFETIME_MS).unref();
}

async function runWorker() {
  const http = require("node:http");
  const { Server } = require("socket.io");
  const scenario = process.env.BENCH_REDIS_SCENARIO;
  let adapter;
  if (scenario === "ours") adapter = require(ROOT).createAdapter();
  else {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: process.env.BENCH_REDIS_URL });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on("error", (err) => console.error(`[stock worker] redis: ${err.message}`));
    await Promise.all([pub.connect(), sub.connect()]);
    adapter = createAdapter(pub, sub, { key: process.env.BENCH_REDIS_KEY });
  }
  // The stock adapter publishes without handling the promise.
  process.on("unhandledRejection", (err) => console.error(`[${scenario} worker] unhandled rejection: ${err && err.message}`));
  const server = http.createServer();
  const io = new Server(server, { transports: ["websocket"], serveClient: false, adapter });
  process.on("message", async (m) => {
    if (m.cmd !== "emit") return;
    const r = await paced((seq) => io.emit("m", m.round, seq, nowNs(), PAYLOAD), m.rate, m.ms);
    process.send({ id: m.id, ...r });
  });
  process.on("disconnect", () => process.exit(0));
  setTimeout(() => process.exit(0), MAX_LIFETIME_MS + 60_000).unref();
  server.listen(0, "127.0.0.1", () => process.send({ listening: server.address().port }));
}

/**
 * Calls emit(seq) `rate` times a second for `ms`: every 2 ms timer emits what the
 * elapsed time calls for (at most 4 ticks' worth, so a stalled loop shows as a
 * longer run, not as a burst). Resolves with the count and the send window.
 */
function paced(emit, rate, ms) {
  const total = Math.round((rate * ms) / 1000);
  const cap = Math.max(1, Math.ceil((rate * 2 * 4) / 1000));
  return new Promise((resolve) => {
    const t0 = nowNs();
    let sent = 0;
    const tick = () => {
      const due = Math.min(total, Math.floor(((nowNs() - t0) / 1e9) * rate) + 1);
      for (let n = Math.min(due - sent, cap); n > 0; n--) emit(sent++);
      if (sent >= total) return resolve({ sent, startNs: t0, endNs: nowNs() });
      setTimeout(tick, 2);
    };
    tick();
  });
}

// ---- role: client process --------------------------------------------------------------

/** socket.io-client sockets of one host of one scenario; driven over IPC by the driver. */
function runClient() {
  const { io: connect } = require("socket.io-client");
  const sockets = []; // { w, s }
  let round = -1;
  let n = 0;
  let seen = []; // per socket: Uint8Array(n)
  let unique = 0;
  let dups = 0;
  let stray = 0; // messages of another round (late ones)
  let hists = []; // per worker index
  let lastNs = 0;
  const onMessage = (i, w) => (r, seq, t) => {
    const now = nowNs();
    if (r !== round || !(seq >= 0 && seq < n)) return stray++;
    if (seen[i][seq]) return dups++;
    seen[i][seq] = 1;
    unique++;
    lastNs = now;
    hists[w].record((now - t) / 1000);
  };
  process.on("message", async (m) => {
    if (m.cmd === "connect") {
      await Promise.all(
        m.targets.map(
          (t) =>
            new Promise((resolve, reject) => {
              const i = sockets.length;
              const s = connect(`http://127.0.0.1:${t.port}`, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: 20_000 });
              sockets.push({ w: t.w, s });
              s.on("m", onMessage(i, t.w));
              s.once("connect", resolve);
              s.once("connect_error", reject);
              s.on("disconnect", (reason) => console.error(`[client] socket to worker ${t.w} disconnected: ${reason}`));
            }),
        ),
      ).then(
        () => process.send({ id: m.id, connected: sockets.length }),
        (err) => process.send({ id: m.id, error: String(err && err.message) }),
      );
    } else if (m.cmd === "start") {
      round = m.round;
      n = m.n;
      seen = sockets.map(() => new Uint8Array(n));
      unique = dups = stray = lastNs = 0;
      hists = Array.from({ length: m.workers }, () => new Histogram());
      process.send({ id: m.id });
    } else if (m.cmd === "count") {
      process.send({ id: m.id, unique, lastNs });
    } else if (m.cmd === "report") {
      const perWorker = hists.map((h) => h.n);
      process.send({ id: m.id, unique, dups, stray, lastNs, perWorker, hists: hists.map((h) => h.toJSON()) });
    }
  });
  process.on("disconnect", () => process.exit(0));
  setTimeout(() => process.exit(0), MAX_LIFETIME_MS).unref();
}

// ---- the driver: Redis ---------------------------------------------------------------------

/** One persistent connection to Redis for the measurements; call() resolves with { value, bytes }. */
function redisConnection(port) {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.setNoDelay(true);
  let buf = Buffer.alloc(0);
  const waiting = [];
  socket.on("data", (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (!buf.length || !waiting.length) break;
      const r = parseResp(buf);
      if (!r) break;
      const w = waiting.shift();
      const bytes = r[1];
      buf = buf.subarray(r[1]);
      if (r[0] instanceof Error) w.reject(r[0]);
      else w.resolve({ value: r[0], bytes });
    }
  });
  const failAll = (err) => {
    while (waiting.length) waiting.shift().reject(err);
  };
  socket.on("error", failAll);
  socket.on("close", () => failAll(new Error("redis connection closed")));
  const ready = new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    ready,
    call(...cmd) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        socket.write(encodeResp(cmd));
      });
    },
    async value(...cmd) {
      return (await this.call(...cmd)).value;
    },
    close: () => socket.destroy(),
  };
}

const killOnExit = new Set(); // pids this run started (directly or through a primary)
process.on("exit", () => {
  for (const pid of killOnExit) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

/**
 * redis-server on a free loopback port (__test__/helpers/redis-server.js: no
 * persistence, dies with this process) and this driver's measuring connection.
 */
async function startRedis() {
  const server = await startRedisServer();
  const conn = redisConnection(server.port);
  await conn.ready;
  return { port: server.port, url: server.url, pid: server.pid, conn, stop: () => server.stop() };
}

/** INFO stats field as a number. */
function infoField(text, name) {
  const m = text.match(new RegExp(`^${name}:(\\d+)`, "m"));
  return m ? Number(m[1]) : NaN;
}

/** Socket inode → pid for the given pids (/proc/<pid>/fd). */
function socketInodes(pids) {
  const out = new Map();
  for (const pid of pids) {
    let fds = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {}
    for (const fd of fds) {
      try {
        const m = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
        if (m) out.set(m[1], pid);
      } catch {}
    }
  }
  return out;
}

/** Local port → inode of TCP connections to 127.0.0.1:redisPort. */
function tcpToRedis(redisPort) {
  const out = new Map();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines = [];
    try {
      lines = fs.readFileSync(file, "utf8").split("\n").slice(1);
    } catch {}
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [, localPort] = f[1].split(":");
      const [, remotePort] = f[2].split(":");
      if (parseInt(remotePort, 16) === redisPort) out.set(parseInt(localPort, 16), f[9]);
    }
  }
  return out;
}

/**
 * CLIENT LIST, each entry attributed to a (scenario, host) by the process that
 * owns its client-side socket. Returns { total (without ours), byHost: { "ours/A": { n, byPid } }, unattributed }.
 */
async function countConnections(redis, setups) {
  const myId = await redis.conn.value("CLIENT", "ID");
  const list = (await redis.conn.value("CLIENT", "LIST")).split("\n").filter(Boolean);
  const pidOwner = new Map();
  for (const s of SCENARIOS) {
    for (const h of HOSTS) {
      const host = setups[s].hosts[h];
      pidOwner.set(host.pid, { key: `${s}/${h}`, role: "primary" });
      host.workerPids.forEach((p, i) => pidOwner.set(p, { key: `${s}/${h}`, role: `worker${i}` }));
    }
  }
  const inodes = socketInodes([...pidOwner.keys()]);
  const ports = tcpToRedis(redis.port);
  const byHost = {};
  for (const s of SCENARIOS) for (const h of HOSTS) byHost[`${s}/${h}`] = { n: 0, byRole: {} };
  let total = 0;
  let unattributed = 0;
  for (const line of list) {
    const id = Number((line.match(/(?:^| )id=(\d+)/) || [])[1]);
    if (id === myId) continue;
    total++;
    const addr = (line.match(/(?:^| )addr=(\S+)/) || [])[1] || "";
    const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
    const inode = ports.get(port);
    const pid = inode && inodes.get(inode);
    const owner = pid && pidOwner.get(pid);
    if (!owner) {
      unattributed++;
      continue;
    }
    const b = byHost[owner.key];
    b.n++;
    b.byRole[owner.role] = (b.byRole[owner.role] || 0) + 1;
  }
  return { total, byHost, unattributed };
}

// ---- the driver: processes -------------------------------------------------------------------

/** An IPC peer with request/answer by id. */
function peer(child, label) {
  let nextId = 1;
  const waiting = new Map();
  child.on("message", (m) => {
    const w = m && m.id !== undefined && waiting.get(m.id);
    if (w) {
      waiting.delete(m.id);
      w(m);
    }
  });
  return {
    child,
    pid: child.pid,
    call(cmd, extra = {}, timeoutMs = 30_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${label}: no answer to ${cmd} in ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, (m) => {
          clearTimeout(t);
          resolve(m);
        });
        child.send({ cmd, id, ...extra });
      });
    },
  };
}

async function startHost(scenario, host, redis, W) {
  const child = fork(__filename, ["--role-primary"], {
    env: {
      ...process.env,
      BENCH_REDIS_SCENARIO: scenario,
      BENCH_REDIS_HOST: host,
      BENCH_REDIS_URL: redis.url,
      BENCH_REDIS_KEY: KEYS[scenario],
      BENCH_WORKERS: String(W),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  killOnExit.add(child.pid);
  const ready = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${scenario} host ${host} not ready in 30 s`)), 30_000);
    child.once("exit", (code) => reject(new Error(`${scenario} host ${host} primary exited (${code})`)));
    child.on("message", (m) => {
      if (m && m.ready) {
        clearTimeout(t);
        resolve(m);
      }
    });
  });
  for (const pid of ready.pids) killOnExit.add(pid);
  return { scenario, host, pid: child.pid, workerPids: ready.pids, ports: ready.ports, peer: peer(child, `${scenario} ${host} primary`) };
}

async function startClients(scenario, host, targets) {
  const child = fork(__filename, ["--role-client"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  killOnExit.add(child.pid);
  const p = peer(child, `${scenario} ${host} clients`);
  const r = await p.call("connect", { targets }, 30_000);
  if (r.error) throw new Error(`${scenario} host ${host} clients: ${r.error}`);
  return p;
}

/** Both hosts of a scenario with their clients; resolves once Redis has every subscription. */
async function startScenario(scenario, redis, o) {
  const hosts = {};
  for (const h of HOSTS) hosts[h] = await startHost(scenario, h, redis, o.workers);
  // Every subscriber of the request channel (stock: a sub client per worker; ours: a bridge per host).
  const want = scenario === "ours" ? HOSTS.length : HOSTS.length * o.workers;
  const channel = `${KEYS[scenario]}-request#/#`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [, n] = await redis.conn.value("PUBSUB", "NUMSUB", channel);
    if (Number(n) === want) break;
    if (Date.now() > deadline) throw new Error(`${scenario}: ${n} subscribers of ${channel}, expected ${want}`);
    await sleep(100);
  }
  const clients = {};
  for (const h of HOSTS) {
    const targets = [];
    for (let i = 0; i < o.clients; i++) hosts[h].ports.forEach((port, w) => targets.push({ w, port }));
    clients[h] = await startClients(scenario, h, targets);
  }
  return { scenario, hosts, clients };
}

function redisCounters(answers) {
  const out = {};
  for (const a of answers) {
    if (!a || !a.redis) continue;
    for (const [k, v] of Object.entries(a.redis)) if (typeof v === "number") out[k] = (out[k] || 0) + v;
  }
  return out;
}

async function primaryStats(setup) {
  if (setup.scenario !== "ours") return null;
  return redisCounters(await Promise.all(HOSTS.map((h) => setup.hosts[h].peer.call("stats"))));
}

function cpuAll(setup, redis) {
  const snap = { redis: cpuSnapshot(redis.pid) };
  for (const h of HOSTS) {
    snap[`primary${h}`] = cpuSnapshot(setup.hosts[h].pid);
    setup.hosts[h].workerPids.forEach((pid, i) => (snap[`worker${h}${i}`] = cpuSnapshot(pid)));
    snap[`clients${h}`] = cpuSnapshot(setup.clients[h].pid);
  }
  return snap;
}

function cpuDiff(a, b) {
  const out = {};
  for (const k of Object.keys(a)) out[k] = cpuBetween(a[k], b[k]);
  return out;
}

const sum = (xs) => xs.reduce((n, x) => (n === null || x === null ? null : n + x), 0);

/** One round of one scenario: broadcasts from worker 0 of host A, everything measured over emission through drain. */
async function round(setup, redis, o, roundId, ms) {
  const W = o.workers;
  const total = Math.round((o.rate * ms) / 1000);
  const sockets = { A: W * o.clients, B: W * o.clients };
  await Promise.all(HOSTS.map((h) => setup.clients[h].call("start", { round: roundId, n: total, workers: W })));
  await sleep(300);
  // Before: questions first (IPC, INFO), then CPU.
  const statsBefore = await primaryStats(setup);
  const infoBefore = await redis.conn.call("INFO", "stats");
  const cpuBefore = cpuAll(setup, redis);
  const t0 = performance.now();
  const sent = await setup.hosts.A.peer.call("emit", { round: roundId, rate: o.rate, ms }, ms + 30_000);
  // Drain: every socket has every message, or 1.5 s without progress, or 10 s.
  const want = sent.sent * (sockets.A + sockets.B);
  let got = 0;
  let lastProgress = performance.now();
  const drainCap = performance.now() + 10_000;
  for (;;) {
    const counts = await Promise.all(HOSTS.map((h) => setup.clients[h].call("count")));
    const n = counts.reduce((x, c) => x + c.unique, 0);
    if (n > got) {
      got = n;
      lastProgress = performance.now();
    }
    if (got >= want || performance.now() - lastProgress > 1500 || performance.now() > drainCap) break;
    await sleep(20);
  }
  const cpuAfter = cpuAll(setup, redis);
  const seconds = (performance.now() - t0) / 1000;
  const infoAfter = await redis.conn.call("INFO", "stats");
  const statsAfter = await primaryStats(setup);
  const reports = {};
  for (const h of HOSTS) reports[h] = await setup.clients[h].call("report");

  const cpu = cpuDiff(cpuBefore, cpuAfter);
  const delivered = reports.A.unique + reports.B.unique;
  const egressBytes =
    infoField(infoAfter.value, "total_net_output_bytes") - infoField(infoBefore.value, "total_net_output_bytes") - infoBefore.bytes;
  const ingressBytes =
    infoField(infoAfter.value, "total_net_input_bytes") - infoField(infoBefore.value, "total_net_input_bytes") - 25; // the "after" INFO stats command (25 bytes) counts itself
  const primaries = sum(HOSTS.map((h) => cpu[`primary${h}`]));
  const workers = sum(HOSTS.flatMap((h) => setup.hosts[h].workerPids.map((_, i) => cpu[`worker${h}${i}`])));
  const workersB = sum(setup.hosts.B.workerPids.map((_, i) => cpu[`workerB${i}`]));
  const clients = sum(HOSTS.map((h) => cpu[`clients${h}`]));
  const us = (s, n) => (s === null || !(n > 0) ? null : (s * 1e6) / n);
  const histB = new Histogram();
  for (const j of reports.B.hists) histB.merge(Histogram.fromJSON(j));
  const histARemote = new Histogram();
  reports.A.hists.forEach((j, w) => w !== 0 && histARemote.merge(Histogram.fromJSON(j)));
  const histALocal = Histogram.fromJSON(reports.A.hists[0]);
  const ms_ = (h, q) => (h.n ? h.quantile(q) / 1000 : null);
  const redisDelta = statsAfter ? Object.fromEntries(Object.entries(statsAfter).map(([k, v]) => [k, v - (statsBefore[k] || 0)])) : null;
  return {
    sent: sent.sent,
    emitSeconds: (sent.endNs - sent.startNs) / 1e9,
    seconds,
    expected: want,
    delivered,
    lost: want - delivered,
    deliveredB: reports.B.unique,
    expectedB: sent.sent * sockets.B,
    duplicates: reports.A.dups + reports.B.dups,
    stray: reports.A.stray + reports.B.stray,
    egressBytes,
    egressPerBroadcast: egressBytes / sent.sent,
    ingressPerBroadcast: ingressBytes / sent.sent,
    cpuS: cpu,
    primaryUsPerDelivery: us(primaries, delivered),
    workerUsPerDelivery: us(workers, delivered),
    hostUsPerDelivery: us(primaries === null || workers === null ? null : primaries + workers, delivered),
    workersBUsPerDeliveryB: us(workersB, reports.B.unique),
    clientUsPerDelivery: us(clients, delivered),
    redisUsPerBroadcast: us(cpu.redis, sent.sent),
    p50B: ms_(histB, 0.5),
    p99B: ms_(histB, 0.99),
    maxB: histB.n ? histB.max / 1000 : null,
    p50ARemote: ms_(histARemote, 0.5),
    p99ARemote: ms_(histARemote, 0.99),
    p50ALocal: ms_(histALocal, 0.5),
    p99ALocal: ms_(histALocal, 0.99),
    redisStats: redisDelta,
  };
}

// ---- the driver: the run ------------------------------------------------------------------------

/** bench/stats.js's fmtFixed, but whole numbers (connection counts) as they are. */
const fmt = (x) => (Number.isInteger(x) ? String(x) : fmtFixed(x));

// [label, key, how ("median" | "sum")]
const METRICS = [
  ["Redis connections per host", "connectionsPerHost", "median"],
  ["Redis egress bytes / broadcast", "egressPerBroadcast", "median"],
  ["Redis ingress bytes / broadcast", "ingressPerBroadcast", "median"],
  ["redis-server CPU µs / broadcast", "redisUsPerBroadcast", "median"],
  ["primary CPU µs / delivery (both hosts)", "primaryUsPerDelivery", "median"],
  ["worker CPU µs / delivery (all workers)", "workerUsPerDelivery", "median"],
  ["host CPU µs / delivery (primaries + workers)", "hostUsPerDelivery", "median"],
  ["host B workers CPU µs / host-B delivery", "workersBUsPerDeliveryB", "median"],
  ["client processes CPU µs / delivery", "clientUsPerDelivery", "median"],
  ["cross-host p50 (ms, host B sockets)", "p50B", "median"],
  ["cross-host p99 (ms, host B sockets)", "p99B", "median"],
  ["in-host remote p50 (ms, host A worker ≥1)", "p50ARemote", "median"],
  ["in-host remote p99 (ms, host A worker ≥1)", "p99ARemote", "median"],
  ["emit window (s)", "emitSeconds", "median"],
  ["delivered / expected", "deliveredRatio", "median"],
  ["lost deliveries (sum)", "lost", "sum"],
  ["duplicates (sum)", "duplicates", "sum"],
];

async function bench() {
  const started = Date.now();
  const o = args();
  const redis = await startRedis();
  console.error(`redis-server pid ${redis.pid} on ${redis.url}`);
  const setups = {};
  const results = [];
  let idle = null;
  try {
    for (const s of SCENARIOS) setups[s] = await startScenario(s, redis, o);
    // What Redis sends with nobody broadcasting (ours' hubs count servers once a second).
    {
      const a = await redis.conn.call("INFO", "stats");
      const t = performance.now();
      await sleep(2000);
      const b = await redis.conn.call("INFO", "stats");
      const sec = (performance.now() - t) / 1000;
      idle = {
        seconds: sec,
        egressBytesPerSec: (infoField(b.value, "total_net_output_bytes") - infoField(a.value, "total_net_output_bytes") - a.bytes) / sec,
      };
    }
    const connections = await countConnections(redis, setups);
    console.error(`Redis connections: ${JSON.stringify(connections)}; idle egress ${fmt(idle.egressBytesPerSec)} B/s`);
    let roundId = 0;
    for (let i = 0; i < o.warmup; i++) {
      for (const s of SCENARIOS) {
        const r = await round(setups[s], redis, o, roundId++, o.ms);
        console.error(`warm-up ${s}: delivered ${r.delivered}/${r.expected}`);
      }
    }
    for (let rep = 0; rep < o.rounds; rep++) {
      const order = rep % 2 === 0 ? SCENARIOS : [...SCENARIOS].reverse();
      for (const s of order) {
        const conns = await countConnections(redis, setups);
        const r = await round(setups[s], redis, o, roundId++, o.ms);
        const hosts = HOSTS.map((h) => conns.byHost[`${s}/${h}`]);
        r.connections = hosts;
        r.connectionsPerHost = median(hosts.map((x) => x.n));
        r.connectionsTotal = conns.total;
        r.connectionsUnattributed = conns.unattributed;
        r.deliveredRatio = r.delivered / r.expected;
        results.push({ round: rep, scenario: s, ...r });
        console.error(
          `round ${rep + 1}/${o.rounds} ${s}: delivered ${r.delivered}/${r.expected} (host B ${r.deliveredB}/${r.expectedB}), ` +
            `egress ${fmt(r.egressPerBroadcast)} B/broadcast, primary ${fmt(r.primaryUsPerDelivery)} µs/delivery, ` +
            `workers ${fmt(r.workerUsPerDelivery)} µs/delivery, cross-host p50 ${fmt(r.p50B)} ms p99 ${fmt(r.p99B)} ms` +
            (r.redisStats ? `, redis stats ${JSON.stringify(r.redisStats)}` : ""),
        );
      }
    }
  } finally {
    for (const s of SCENARIOS) {
      const st = setups[s];
      if (!st) continue;
      for (const h of HOSTS) {
        if (st.clients[h]) st.clients[h].child.disconnect();
        st.hosts[h].peer.child.disconnect();
      }
    }
    await sleep(500);
    redis.conn.close();
    await redis.stop();
  }

  // ---- report
  const summary = { stock: {}, ours: {}, ratio: {} };
  const rows = [];
  for (const [label, key, how] of METRICS) {
    const per = {};
    const agg = {};
    for (const s of SCENARIOS) {
      per[s] = results.filter((r) => r.scenario === s).map((r) => r[key]);
      agg[s] = how === "sum" ? per[s].reduce((n, x) => n + (x || 0), 0) : median(per[s]);
      summary[s][key] = agg[s];
    }
    const ratio = how === "median" && agg.stock > 0 ? agg.ours / agg.stock : NaN;
    if (how === "median") summary.ratio[key] = ratio;
    rows.push({ label, key, how, per, agg, ratio });
  }
  const redisStats = {};
  for (const r of results.filter((x) => x.scenario === "ours")) {
    for (const [k, v] of Object.entries(r.redisStats || {})) redisStats[k] = (redisStats[k] || 0) + v;
  }
  summary.oursRedisStats = redisStats;
  const W = o.workers;
  const targets = {
    connectionsPerHost: { target: "ours = 2 (stock 2·W)", ours: summary.ours.connectionsPerHost, stock: summary.stock.connectionsPerHost },
    egressPerBroadcast: { target: `ours/stock ≤ 1/W = ${fmt(1 / W)}`, ratio: summary.ratio.egressPerBroadcast },
    p99B: { target: "ours/stock ≤ 1", ratio: summary.ratio.p99B },
  };
  targets.connectionsPerHost.met = targets.connectionsPerHost.ours === 2 && targets.connectionsPerHost.stock === 2 * W;
  targets.egressPerBroadcast.met = targets.egressPerBroadcast.ratio <= 1 / W;
  targets.p99B.met = targets.p99B.ratio <= 1;
  summary.targets = targets;

  const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  const redisVersion = (() => {
    try {
      return require("node:child_process").execFileSync(REDIS_SERVER, ["--version"], { encoding: "utf8" }).trim();
    } catch {
      return null;
    }
  })();
  console.log(
    `redis bench: 2 hosts × W=${W} workers, ${o.clients} sockets per worker (${HOSTS.length * W * o.clients} in all), WebSocket; ` +
      `worker 0 of host A io.emit()s 100 B at ${o.rate}/s for ${o.ms} ms; ${o.rounds} rounds each, order alternating (medians; losses summed)`,
  );
  console.log(
    `stock = @socket.io/redis-adapter ${pkgVersion("@socket.io/redis-adapter")} + redis ${pkgVersion("redis")} in every worker; ` +
      `ours = setupPrimary({ redis }) + createAdapter(); ${redisVersion || "redis-server"}, loopback`,
  );
  console.log("| metric | stock per round | stock | ours per round | ours | ours/stock |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const f = r.how === "sum" ? (x) => String(x) : r.key === "deliveredRatio" ? (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)} %` : "–") : fmt;
    const reps = (s) => r.per[s].map(f).join(" / ");
    const ratio = Number.isFinite(r.ratio) ? `×${r.ratio < 0.1 ? r.ratio.toFixed(3) : r.ratio.toFixed(2)}` : "–";
    console.log(`| ${r.label} | ${reps("stock")} | ${f(r.agg.stock)} | ${reps("ours")} | ${f(r.agg.ours)} | ${ratio} |`);
  }
  console.log(
    `targets: connections per host ours ${fmt(targets.connectionsPerHost.ours)} vs stock ${fmt(targets.connectionsPerHost.stock)} (want 2 vs ${2 * W}): ${targets.connectionsPerHost.met ? "met" : "NOT met"}; ` +
      `egress per broadcast ×${fmt(targets.egressPerBroadcast.ratio)} (want ≤ ×${fmt(1 / W)}): ${targets.egressPerBroadcast.met ? "met" : "NOT met"}; ` +
      `cross-host p99 ×${fmt(targets.p99B.ratio)} (want ≤ ×1): ${targets.p99B.met ? "met" : "NOT met"}`,
  );
  console.log(`ours stats().redis over the measured rounds (both hosts): ${JSON.stringify(redisStats)}`);
  console.log(`idle Redis egress (nobody broadcasting, both scenarios up): ${fmt(idle.egressBytesPerSec)} B/s`);

  const meta = {
    date: new Date(started).toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0] && os.cpus()[0].model,
    platform: `${os.type()} ${os.release()}`,
    command: `node bench/redis.js ${process.argv.slice(2).join(" ")}`.trim(),
    flags: o,
    redisServer: redisVersion,
    scenarios: {
      stock: `@socket.io/redis-adapter ${pkgVersion("@socket.io/redis-adapter")} createAdapter(pub, sub) with redis ${pkgVersion("redis")} clients in every worker; plain node:cluster primary; key ${KEYS.stock}`,
      ours: `setupPrimary({ redis: { url, key: "${KEYS.ours}" } }) in each primary, this package's createAdapter() in the workers`,
    },
    socketio: pkgVersion("socket.io"),
    socketioClient: pkgVersion("socket.io-client"),
    idle,
    elapsedSec: (Date.now() - started) / 1000,
  };
  const out = path.join(__dirname, "results");
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, "redis.json"), JSON.stringify({ meta, results, summary }, null, 2) + "\n");
  console.error(`wrote ${path.relative(process.cwd(), path.join(out, "redis.json"))} (${meta.elapsedSec.toFixed(0)} s)`);
}

// Workers are forked with the primary's arguments: check for them first.
if (cluster.isWorker) runWorker();
else if (process.argv.includes("--role-primary")) runPrimary();
else if (process.argv.includes("--role-client")) runClient();
else {
  const die = (code) => () => process.exit(code);
  process.on("SIGINT", die(130));
  process.on("SIGTERM", die(143));
  setTimeout(() => {
    console.error(`redis bench: still running after ${MAX_LIFETIME_MS / 60_000} min, giving up`);
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
