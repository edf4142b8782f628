"use strict";
// Cluster primary under test. Spawned by the driver as its own process (not a
// fork of the driver), so its /proc CPU and RSS are the adapter relay's alone.
//
// env: BENCH_ADAPTER_PATH (module exporting setupPrimary/createAdapter),
//      BENCH_WORKERS, BENCH_SERIALIZATION ("json" | "advanced"),
//      BENCH_CTRL_PORT, BENCH_TOKEN, BENCH_MAX_LIFE_MS,
//      BENCH_PROF_DIR (optional: workers write --cpu-prof profiles there).

const cluster = require("node:cluster");
const path = require("node:path");
const { serveControl } = require("./control");

const W = Number(process.env.BENCH_WORKERS);
const adapter = require(process.env.BENCH_ADAPTER_PATH);

const profDir = process.env.BENCH_PROF_DIR;
cluster.setupPrimary({
  exec: path.join(__dirname, "worker.js"),
  serialization: process.env.BENCH_SERIALIZATION || "json",
  execArgv: profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [],
});
// The adapter's relay must be listening before any worker can publish.
adapter.setupPrimary();

const workers = [];
for (let i = 0; i < W; i++) {
  const w = cluster.fork({ BENCH_WORKER_IDX: String(i) });
  workers.push(w);
  // A dead worker is part of scenario (e); never restart it.
  w.on("error", () => {});
}

function kill(signal) {
  for (const w of workers) {
    try {
      w.process.kill(signal);
    } catch {}
  }
}

function shutdown(code) {
  if (!profDir) {
    kill("SIGKILL");
    return process.exit(code);
  }
  // A profiled worker writes its profile when it exits on its own.
  kill("SIGTERM");
  setTimeout(() => {
    kill("SIGKILL");
    process.exit(code);
  }, 2000);
}
process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(130));

serveControl(
  { role: "primary", workers: workers.map((w, idx) => ({ idx, pid: w.process.pid })) },
  {
    exit: async () => setImmediate(() => shutdown(0)),
  },
);
