"use strict";
// Connection state recovery, side by side: what it costs and how fast it
// restores.
//
//   node bench/recovery.js [--messages 20000] [--reps 5] [--missed 1000] [--restores 20]
//
// 1. Throughput: two workers, two socket.io-client connections on each (in
//    this process); worker 0 emits `--messages` 100 B broadcasts to everyone
//    in bursts of 100 per tick. Three clusters, in one run: this package with
//    `connectionStateRecovery` on, the same with it off, and
//    @socket.io/cluster-adapter (which cannot recover). Reported: deliveries
//    per second (first to last delivery) and the emitting worker's CPU per
//    emit (its main thread's schedstat).
// 2. Restore time: a client on worker 0 is cut off (its TCP socket
//    destroyed), worker 1 broadcasts `--missed` packets, and the client
//    reconnects to worker 1; measured from the reconnection attempt to the
//    last missed packet, `--restores` times: p50 and p99.

const cluster = require("node:cluster");
const { mainThreadNs, numericFlags } = require("./proc");
const http = require("node:http");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const PAYLOAD = "x".repeat(100);

function args() {
  return numericFlags({ messages: 20_000, reps: 5, missed: 1000, restores: 20 });
}


// ---- roles -------------------------------------------------------------------

function runPrimary() {
  const adapter = require(process.env.BENCH_ADAPTER === "stock" ? "@socket.io/cluster-adapter" : ROOT);
  if (process.env.BENCH_ADAPTER === "stock") cluster.setupPrimary({ serialization: "advanced" });
  adapter.setupPrimary();
  const workers = [cluster.fork(), cluster.fork()];
  const ports = [];
  for (const [i, w] of workers.entries()) {
    w.on("message", (m) => {
      if (m.port) {
        ports[i] = m.port;
        if (ports.filter(Boolean).length === 2) process.send({ ports });
      } else if (m.done) process.send(m);
    });
  }
  process.on("message", (m) => {
    if (m.cmd === "stop") {
      for (const w of workers) w.kill();
      process.exit(0);
    }
    if (m && typeof m.worker === "number") workers[m.worker].send(m);
  });
}

function runWorker() {
  const { Server } = require("socket.io");
  const adapter = require(process.env.BENCH_ADAPTER === "stock" ? "@socket.io/cluster-adapter" : ROOT);
  const opts = { transports: ["websocket"] };
  if (process.env.BENCH_RECOVERY === "1") opts.connectionStateRecovery = { maxDisconnectionDuration: 60_000 };
  const server = http.createServer();
  const io = new Server(server, opts);
  io.adapter(adapter.createAdapter());
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }));
  process.on("message", async (m) => {
    if (!m || typeof m.count !== "number") return;
    const t0 = mainThreadNs();
    for (let sent = 0; sent < m.count; ) {
      for (let i = 0; i < 100 && sent < m.count; i++, sent++) io.emit("m", sent, PAYLOAD);
      await new Promise((r) => setImmediate(r));
    }
    process.send({ done: true, ns: mainThreadNs() - t0 });
  });
}

// ---- the bench -----------------------------------------------------------------

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

async function startCluster(adapter, recovery) {
  const { fork } = require("node:child_process");
  const child = fork(__filename, ["--role-primary"], { env: { ...process.env, BENCH_ADAPTER: adapter, BENCH_RECOVERY: recovery ? "1" : "0" }, stdio: "inherit" });
  const next = () => new Promise((resolve) => child.once("message", resolve));
  const first = await next();
  if (!first.ports) throw new Error(`unexpected first message from the primary: ${JSON.stringify(first)}`);
  const { ports } = first;
  return { child, ports, next, stop: () => child.send({ cmd: "stop" }) };
}

async function throughput(name, adapter, recovery, opts) {
  const { io: connect } = require("socket.io-client");
  const c = await startCluster(adapter, recovery);
  const clients = [];
  let received = 0;
  let first = 0;
  let last = 0;
  for (const port of c.ports) {
    for (let i = 0; i < 2; i++) {
      const s = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true, reconnection: false });
      s.on("m", () => {
        if (received++ === 0) first = performance.now();
        last = performance.now();
      });
      await new Promise((r) => s.once("connect", r));
      clients.push(s);
    }
  }
  const rows = [];
  for (let rep = 0; rep <= opts.reps; rep++) {
    received = 0;
    c.child.send({ worker: 0, count: opts.messages });
    const { ns } = await c.next();
    const want = opts.messages * clients.length;
    const deadline = performance.now() + 30_000;
    while (received < want && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // The first round warms up.
    if (rep > 0) rows.push({ rate: received / ((last - first) / 1000), usPerEmit: ns / opts.messages / 1000, lost: want - received });
  }
  for (const s of clients) s.close();
  c.stop();
  return { name, rate: percentile(rows.map((r) => r.rate), 50), usPerEmit: percentile(rows.map((r) => r.usPerEmit), 50), lost: rows.reduce((n, r) => n + r.lost, 0) };
}

async function restoreTimes(opts) {
  const { io: connect } = require("socket.io-client");
  const c = await startCluster("rs", true);
  const url = (i) => `http://127.0.0.1:${c.ports[i]}`;
  const times = [];
  let recovered = 0;
  for (let round = 0; round < opts.restores; round++) {
    const s = connect(url(0), { transports: ["websocket"], forceNew: true, reconnectionDelay: 10, reconnectionDelayMax: 10, randomizationFactor: 0 });
    let got = 0;
    s.on("m", () => got++);
    await new Promise((r) => s.once("connect", r));
    c.child.send({ worker: 0, count: 1 });
    await c.next();
    while (got < 1) await new Promise((r) => setTimeout(r, 2));
    // Cut, then broadcast what it misses from the other worker before it
    // tries to reconnect (500 ms later); timed from that attempt.
    s.io.reconnectionDelay(500).reconnectionDelayMax(500);
    s.io.uri = url(1);
    let t0 = 0;
    s.io.once("reconnect_attempt", () => (t0 = performance.now()));
    s.io.engine.transport.ws._socket.destroy();
    await new Promise((r) => s.once("disconnect", r));
    got = 0;
    c.child.send({ worker: 1, count: opts.missed });
    await c.next();
    const deadline = performance.now() + 10_000;
    while (got < opts.missed && performance.now() < deadline) await new Promise((r) => setImmediate(r));
    times.push(performance.now() - t0);
    if (s.recovered) recovered++;
    s.close();
  }
  c.stop();
  return { p50: percentile(times, 50), p99: percentile(times, 99), recovered, rounds: opts.restores };
}

async function bench() {
  const opts = args();
  const rows = [];
  rows.push(await throughput("socket.io-cluster-rs, recovery off", "rs", false, opts));
  rows.push(await throughput("socket.io-cluster-rs, recovery on", "rs", true, opts));
  rows.push(await throughput("@socket.io/cluster-adapter (no recovery)", "stock", false, opts));
  console.log(`recovery bench: W=2, 4 clients, ${opts.messages} broadcasts of 100 B from worker 0 per rep, ${opts.reps} reps (medians)`);
  console.log("| cluster | deliveries/s | emitting worker µs/emit | lost |");
  console.log("|---|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.name} | ${Math.round(r.rate)} | ${r.usPerEmit.toFixed(2)} | ${r.lost} |`);
  const [off, on, stock] = rows;
  console.log(
    `recovery on / off: throughput ×${(on.rate / off.rate).toFixed(2)}, emitter CPU ×${(on.usPerEmit / off.usPerEmit).toFixed(2)}; ` +
      `recovery on / stock: throughput ×${(on.rate / stock.rate).toFixed(2)}, emitter CPU ×${(on.usPerEmit / stock.usPerEmit).toFixed(2)}`,
  );
  const r = await restoreTimes(opts);
  console.log(`restore of ${opts.missed} missed packets on another worker: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${r.recovered}/${r.rounds} recovered)`);
}

if (cluster.isWorker) runWorker();
else if (process.argv.includes("--role-primary")) runPrimary();
else
  bench().catch((err) => {
    console.error(err);
    process.exit(1);
  });
