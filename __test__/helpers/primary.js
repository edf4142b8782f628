"use strict";
// Cluster primary of the integration suites, run as a child process of the
// test file (one primary per cluster, so each cluster starts from a fresh
// `setupPrimary()` and fresh cluster settings). It forks the workers, relays
// the test process's commands to them and reports their answers, readiness
// and exits back. Configuration: env HARNESS_CONFIG (JSON, see cluster.js).
//
// Lifetime: it SIGKILLs its workers and exits when the test process goes
// away (IPC disconnect), on "harness:shutdown", or after cfg.maxLifetime ms.
// Workers exit by themselves when the primary dies (cluster workers exit on
// an unexpected IPC disconnect).

const cluster = require("node:cluster");
const { toWire, fromWire, errorToWire } = require("./wire");

const cfg = JSON.parse(process.env.HARNESS_CONFIG);

// The stock package needs the advanced serialization for Buffers and Sets;
// ours promises binary fidelity with the default (json) one. A test may
// force either with cfg.serialization.
const serialization = cfg.serialization || (cfg.stock ? "advanced" : undefined);
cluster.setupPrimary(serialization ? { exec: cfg.workerScript, serialization } : { exec: cfg.workerScript });

const adapterModule = require(cfg.adapterModule);
const workers = [];
const pending = new Map(); // exec id -> worker index
let primaryHandle;

function toParent(msg) {
  if (process.connected) process.send(msg);
}

function fork(extraEnv = {}) {
  const index = workers.length;
  const worker = cluster.fork({
    WORKER_INDEX: String(index),
    ADAPTER_MODULE: cfg.adapterModule,
    ADAPTER_OPTS: JSON.stringify(cfg.adapterOpts || {}),
    SERVER_OPTS: JSON.stringify(cfg.serverOpts || {}),
    ...(cfg.workerEnv || {}),
    ...extraEnv,
  });
  workers[index] = worker;
  worker.on("message", (msg) => {
    if (!msg || typeof msg.cmd !== "string" || !msg.cmd.startsWith("harness:")) return;
    if (msg.cmd === "harness:reply") pending.delete(msg.id);
    toParent({ ...msg, worker: index });
  });
  worker.on("exit", (code, signal) => {
    const t = Date.now();
    for (const [id, w] of pending) {
      if (w !== index) continue;
      pending.delete(id);
      toParent({
        cmd: "harness:reply",
        id,
        worker: index,
        ok: false,
        error: { name: "Error", message: `worker ${index} exited (code ${code}, signal ${signal}) before answering`, stack: "" },
      });
    }
    toParent({ cmd: "harness:exit", worker: index, code, signal, t });
  });
  return index;
}

if (!cfg.forkBeforeSetup) primaryHandle = adapterModule.setupPrimary(cfg.primaryOpts);
for (let i = 0; i < cfg.workers; i++) fork();
// The Socket.IO tutorial's order: cluster.fork() first, setupPrimary() after.
if (cfg.forkBeforeSetup) primaryHandle = adapterModule.setupPrimary(cfg.primaryOpts);

function killAll() {
  for (const worker of workers) {
    if (worker && !worker.isDead()) {
      try {
        process.kill(worker.process.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

function shutdown(code) {
  killAll();
  // Give the exit events a moment, then go regardless.
  setTimeout(() => process.exit(code), 200).unref();
  const check = setInterval(() => {
    if (workers.every((w) => !w || w.isDead())) process.exit(code);
  }, 10);
  check.unref();
}

setTimeout(() => {
  console.error(`harness primary: maxLifetime ${cfg.maxLifetime} ms reached, killing the cluster`);
  shutdown(3);
}, cfg.maxLifetime || 120_000).unref();

process.on("disconnect", () => shutdown(0));

process.on("message", async (msg) => {
  if (!msg || typeof msg.cmd !== "string") return;
  const reply = (ok, payload) =>
    toParent({ cmd: "harness:reply", id: msg.id, worker: msg.worker, ok, ...(ok ? { result: toWire(payload) } : { error: payload }) });
  switch (msg.cmd) {
    case "harness:exec": {
      const worker = workers[msg.worker];
      if (!worker || worker.isDead() || !worker.isConnected()) {
        reply(false, { name: "Error", message: `worker ${msg.worker} is not running`, stack: "" });
        return;
      }
      pending.set(msg.id, msg.worker);
      worker.send(msg);
      return;
    }
    case "harness:kill": {
      const worker = workers[msg.worker];
      try {
        process.kill(worker.process.pid, msg.signal || "SIGKILL");
        reply(true, { t: Date.now() });
      } catch (err) {
        reply(false, errorToWire(err));
      }
      return;
    }
    case "harness:fork":
      reply(true, fork(msg.env || {}));
      return;
    case "harness:primary-exec":
      try {
        const fn = (0, eval)(`(${msg.fn})`);
        const result = await fn({ cluster, adapterModule, primaryHandle, workers, cfg, require }, fromWire(msg.arg));
        reply(true, result);
      } catch (err) {
        reply(false, errorToWire(err));
      }
      return;
    case "harness:shutdown":
      shutdown(0);
      return;
    default:
  }
});
