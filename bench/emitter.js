"use strict";
// Emitting from outside the workers, side by side with what users do today
// (a worker emitting the same load with io.emit()):
//
//   node bench/emitter.js [--rate 10000] [--ms 1000] [--reps 5] [--clients 2]
//
// A two-worker cluster (one port per worker, `--clients` socket.io-client
// connections on each, in this process) receives 100 B broadcasts to
// everyone at `--rate` emits/s for `--ms`, sent by
//   worker    io.emit() in worker 0 (the baseline),
//   primary   setupPrimary().emitter.emit(),
//   process   createEmitter({ primaryPid }) in a separate process,
// and, to subtract the pacing loop's own cost, an idle loop in the primary.
// Reported per scenario, medians over `--reps`: the sender's main-thread CPU
// per emit (µs, pacing loop subtracted), the primary's CPU (all threads) per
// delivery, and deliveries per second at the clients.

const cluster = require("node:cluster");
const { mainThreadNs, numericFlags, cpuSnapshot, cpuBetween } = require("./proc");
const http = require("node:http");
const path = require("node:path");
const { spawn } = require("node:child_process");

const ROOT = path.join(__dirname, "..");
const PAYLOAD = "x".repeat(100);

/** This process's main-thread CPU time in ns (its tid is its pid). */

/** Calls `emit()` `rate` times per second for `ms`, in 1 ms slices; resolves with the main-thread ns used. */
function paced(emit, rate, ms) {
  return new Promise((resolve) => {
    const start = Date.now();
    const t0 = mainThreadNs();
    let sent = 0;
    const tick = () => {
      const due = Math.min(Math.round(((Date.now() - start) * rate) / 1000), Math.round((rate * ms) / 1000));
      while (sent < due) {
        emit(sent);
        sent++;
      }
      if (Date.now() - start < ms || sent < due) setTimeout(tick, 1);
      else setImmediate(() => resolve({ ns: mainThreadNs() - t0, sent }));
    };
    tick();
  });
}

function args() {
  return numericFlags({ rate: 10_000, ms: 1000, reps: 5, clients: 2 });
}

// ---- roles -------------------------------------------------------------------

function runPrimary() {
  const { setupPrimary } = require(ROOT);
  const hub = setupPrimary();
  const workers = [cluster.fork({ BENCH_PORT_INDEX: 0 }), cluster.fork({ BENCH_PORT_INDEX: 1 })];
  const ports = [];
  for (const [i, w] of workers.entries()) {
    w.on("message", (m) => {
      if (m.port) {
        ports[i] = m.port;
        if (ports.filter(Boolean).length === 2) process.send({ ports });
      } else if (m.done) process.send(m);
    });
  }
  process.on("message", async (m) => {
    if (m.cmd === "stop") {
      for (const w of workers) w.kill();
      process.exit(0);
    }
    if (m.who === "worker") return workers[0].send(m);
    const emitter = hub.emitter;
    const emit = m.who === "idle" ? () => {} : (i) => emitter.emit("m", i, PAYLOAD);
    const r = await paced(emit, m.rate, m.ms);
    process.send({ done: true, ...r });
  });
}

function runWorker() {
  const { Server } = require("socket.io");
  const { createAdapter } = require(ROOT);
  const server = http.createServer();
  const io = new Server(server, { transports: ["websocket"], adapter: createAdapter() });
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }));
  process.on("message", async (m) => {
    const r = await paced((i) => io.emit("m", i, PAYLOAD), m.rate, m.ms);
    process.send({ done: true, ...r });
  });
}

/** The separate emitter process: argv = [primaryPid, rate, ms]. */
async function runEmitterProcess() {
  const { createEmitter } = require(ROOT);
  const [pid, rate, ms] = process.argv.slice(3).map(Number);
  const emitter = createEmitter({ primaryPid: pid });
  await emitter.serverCount(); // connected
  const r = await paced((i) => emitter.emit("m", i, PAYLOAD), rate, ms);
  await emitter.close();
  process.stdout.write(JSON.stringify(r));
}

// ---- the bench -----------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
}

async function bench() {
  const { io: connect } = require("socket.io-client");
  const opts = args();
  const primary = require("node:child_process").fork(__filename, ["--role-primary"], { stdio: "inherit" });
  const next = () => new Promise((resolve) => primary.once("message", resolve));
  const { ports } = await next();
  const clients = [];
  let received = 0;
  let firstAt = 0;
  let lastAt = 0;
  for (const port of ports) {
    for (let i = 0; i < opts.clients; i++) {
      const s = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true });
      s.on("m", () => {
        if (received++ === 0) firstAt = performance.now();
        lastAt = performance.now();
      });
      await new Promise((r) => s.once("connect", r));
      clients.push(s);
    }
  }
  const expected = (n) => n * clients.length;

  async function once(who) {
    received = 0;
    const before = cpuSnapshot(primary.pid);
    let r;
    if (who === "process") {
      r = await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [__filename, "--role-emitter", String(primary.pid), String(opts.rate), String(opts.ms)]);
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`emitter process exited with ${code}`))));
      });
    } else {
      primary.send({ who, rate: opts.rate, ms: opts.ms });
      r = await next();
    }
    const want = who === "idle" ? 0 : expected(r.sent);
    const deadline = performance.now() + 10_000;
    while (received < want && performance.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    const primaryCpu = cpuBetween(before, cpuSnapshot(primary.pid));
    // From the first delivery to the last (a separate process starts up first).
    return { ns: r.ns, sent: r.sent, received, want, seconds: (lastAt - firstAt) / 1000, primaryCpu };
  }

  const rows = { worker: [], primary: [], process: [], idle: [] };
  await once("primary"); // warm-up
  await once("worker");
  for (let rep = 0; rep < opts.reps; rep++) for (const who of Object.keys(rows)) rows[who].push(await once(who));
  const idleNsPerSlot = median(rows.idle.map((r) => r.ns)) / (opts.rate * opts.ms / 1000);
  console.log(`emitter bench: W=2, ${clients.length} clients, ${opts.rate} emits/s for ${opts.ms} ms, 100 B to everyone, ${opts.reps} reps (medians)`);
  console.log("| sender | sender main thread µs/emit | primary CPU µs/delivery | deliveries/s | lost |");
  console.log("|---|---:|---:|---:|---:|");
  const summary = {};
  for (const who of ["worker", "primary", "process"]) {
    const rs = rows[who];
    const usPerEmit = median(rs.map((r) => (r.ns / r.sent - idleNsPerSlot) / 1000));
    const primaryUs = median(rs.map((r) => (r.primaryCpu * 1e6) / r.received));
    const rate = median(rs.map((r) => r.received / r.seconds));
    const lost = rs.reduce((n, r) => n + (r.want - r.received), 0);
    summary[who] = { usPerEmit, primaryUs, rate };
    console.log(`| ${who} | ${usPerEmit.toFixed(2)} | ${primaryUs.toFixed(3)} | ${Math.round(rate)} | ${lost} |`);
  }
  console.log(
    `ratios to the worker: primary emitter sender CPU ×${(summary.primary.usPerEmit / summary.worker.usPerEmit).toFixed(2)}, ` +
      `separate process ×${(summary.process.usPerEmit / summary.worker.usPerEmit).toFixed(2)}; ` +
      `idle pacing loop ${(idleNsPerSlot / 1000).toFixed(2)} µs per slot (subtracted)`,
  );
  for (const c of clients) c.close();
  primary.send({ cmd: "stop" });
}

// Workers are forked with the primary's arguments: check for them first.
if (cluster.isWorker) runWorker();
else if (process.argv.includes("--role-primary")) runPrimary();
else if (process.argv.includes("--role-emitter")) runEmitterProcess();
else bench().catch((err) => {
  console.error(err);
  process.exit(1);
});
