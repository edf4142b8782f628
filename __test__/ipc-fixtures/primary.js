"use strict";
// Fixture cluster primary, forked by the ipc tests with an IPC channel to the
// test process. Configured by env IPC_FIXTURE (JSON):
//   primary:       "stock" (@socket.io/cluster-adapter's setupPrimary) | "ours" | "none"
//   workers:       ["ours" | "stock", ...]: which createAdapter() each worker uses
//   serialization: "json" (default) | "advanced"
//   sticky:        true: @socket.io/sticky's setupMaster on 127.0.0.1:0 in front
//   exec:          worker script in this folder (default worker.js)
//   userMessages:  true: log the messages workers send (cluster.on("message"))
//   lateSetup:     {early, delayMs}: fork `early` workers, wait, then setupPrimary() and fork the rest
//   lifetimeMs:    hard upper bound of this process' life
// Protocol with the test process:
//   → {event:"ready", workers:[{id,pid,port,kind,transport}], stickyPort}
//   → {event:"worker", from, msg} for worker messages carrying a `fixture` key
//   → {event:"exit", id, pid, code, signal}
//   ← {id, cmd:"send", to: workerId|"all", msgs:[...]}  → {reply:id}
//   ← {id, cmd:"userLog"}                                → {reply:id, value}

const cluster = require("node:cluster");
const http = require("node:http");
const path = require("node:path");

const cfg = JSON.parse(process.env.IPC_FIXTURE || "{}");
const kinds = cfg.workers || ["ours", "ours", "ours"];

let shuttingDown = false;
function tell(msg) {
  if (process.connected) process.send(msg);
}

const lifetime = setTimeout(() => {
  console.error("ipc fixture primary: lifetime exceeded, shutting down");
  shutdown(1);
}, cfg.lifetimeMs || 120_000);

const userLog = {}; // worker id → messages, as the user's cluster.on("message") saw them
if (cfg.userMessages) {
  cluster.on("message", (worker, msg) => {
    (userLog[worker.id] = userLog[worker.id] || []).push(msg);
  });
}

cluster.setupPrimary({
  exec: path.resolve(__dirname, cfg.exec || "worker.js"),
  serialization: cfg.serialization || "json",
});

function setupAdapterPrimary() {
  if (cfg.primary === "stock") require("@socket.io/cluster-adapter").setupPrimary();
  else if (cfg.primary === "ours") require("../..").setupPrimary();
}

let stickyPort = null;
let stickyServer = null;
const ready = new Map();

function maybeReady() {
  if (ready.size !== kinds.length || (cfg.sticky && stickyPort === null)) return;
  const workers = [...ready.values()].sort((a, b) => a.id - b.id);
  tell({ event: "ready", workers, stickyPort });
}

if (cfg.sticky) {
  stickyServer = http.createServer();
  require("@socket.io/sticky").setupMaster(stickyServer, { loadBalancingMethod: "least-connection" });
  stickyServer.listen(0, "127.0.0.1", () => {
    stickyPort = stickyServer.address().port;
    maybeReady();
  });
}

cluster.on("message", (worker, msg) => {
  if (!msg || typeof msg !== "object" || !msg.fixture) return;
  if (msg.fixture === "ready") {
    const { fixture, ...details } = msg;
    ready.set(worker.id, { ...details, id: worker.id, pid: worker.process.pid });
    maybeReady();
  } else {
    tell({ event: "worker", from: worker.id, msg });
  }
});

cluster.on("exit", (worker, code, signal) => {
  if (!shuttingDown) tell({ event: "exit", id: worker.id, pid: worker.process.pid, code, signal });
});

const forkWorker = (kind) => cluster.fork({ IPC_FIXTURE_ADAPTER: kind, IPC_FIXTURE: JSON.stringify(cfg) });
if (cfg.lateSetup) {
  // The first `early` workers start (and create their adapters) before the
  // primary calls setupPrimary(); the others are forked after it.
  kinds.slice(0, cfg.lateSetup.early).forEach(forkWorker);
  setTimeout(() => {
    setupAdapterPrimary();
    kinds.slice(cfg.lateSetup.early).forEach(forkWorker);
  }, cfg.lateSetup.delayMs);
} else {
  setupAdapterPrimary();
  kinds.forEach(forkWorker);
}

process.on("message", (m) => {
  if (!m || typeof m !== "object") return;
  if (m.cmd === "send") {
    const targets = m.to === "all" ? Object.values(cluster.workers) : [cluster.workers[m.to]];
    for (const w of targets) for (const msg of m.msgs) w.send(msg);
    tell({ reply: m.id });
  } else if (m.cmd === "userLog") {
    tell({ reply: m.id, value: userLog });
  }
});

function shutdown(code) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (stickyServer) stickyServer.close();
  const alive = Object.values(cluster.workers || {});
  for (const w of alive) w.process.kill("SIGTERM");
  const force = setTimeout(() => {
    for (const w of Object.values(cluster.workers || {})) w.process.kill("SIGKILL");
    process.exit(code);
  }, 2000);
  const check = () => {
    if (Object.keys(cluster.workers || {}).length === 0) {
      clearTimeout(force);
      clearTimeout(lifetime);
      process.exit(code);
    }
  };
  cluster.on("exit", check);
  check();
}

process.on("SIGTERM", () => shutdown(0));
process.on("disconnect", () => shutdown(0));
