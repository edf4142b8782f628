"use strict";
// A cluster primary with no IPC channel to anyone (started with plain
// stdio pipes), to check that a primary which called setupPrimary() exits by
// itself once its workers are gone. It forks STANDALONE_WORKERS workers of
// __test__/worker.js, has them talk to each other, then:
//   STANDALONE_MODE=clean  asks every worker to io.close() and disconnect;
//   STANDALONE_MODE=crash  waits for the test to SIGKILL the workers.
// Progress goes to stdout as JSON lines: {"event":"ready","pids":[..]},
// {"event":"workers-exited","t":ms}. The primary then must exit on its own.

const cluster = require("node:cluster");
const path = require("node:path");
const { modulePath, isStock } = require("./adapter-module");

const count = Number(process.env.STANDALONE_WORKERS || 2);
const mode = process.env.STANDALONE_MODE || "clean";

cluster.setupPrimary({
  exec: path.join(__dirname, "..", "worker.js"),
  ...(isStock ? { serialization: "advanced" } : {}),
});
require(modulePath).setupPrimary();

function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// Sends source text to every worker and resolves once all answered.
function execAll(workers, fn) {
  return Promise.all(
    workers.map(
      (w, i) =>
        new Promise((resolve, reject) => {
          const id = `standalone-${i}-${Math.random()}`;
          const onMessage = (msg) => {
            if (!msg || msg.cmd !== "harness:reply" || msg.id !== id) return;
            w.off("message", onMessage);
            if (msg.ok) resolve(msg.result);
            else reject(new Error(msg.error.message));
          };
          w.on("message", onMessage);
          w.send({ cmd: "harness:exec", id, fn: fn.toString(), arg: null });
        }),
    ),
  );
}

const workers = [];
let ready = 0;
let exited = 0;
for (let i = 0; i < count; i++) {
  const w = cluster.fork({ WORKER_INDEX: String(i), ADAPTER_MODULE: modulePath });
  workers.push(w);
  w.on("message", (msg) => {
    if (msg && msg.cmd === "harness:ready" && ++ready === count) start().catch(fail);
  });
  w.on("exit", () => {
    if (++exited === count) out({ event: "workers-exited", t: Date.now() });
  });
}

function fail(err) {
  console.error(err);
  for (const w of workers) w.process.kill("SIGKILL");
  process.exitCode = 1;
}

async function start() {
  // Let the workers find each other, then exercise the adapter once.
  const deadline = Date.now() + 5000;
  for (;;) {
    const counts = await execAll(workers, ({ io }) => io.of("/").adapter.serverCount());
    if (counts.every((n) => n === count)) break;
    if (Date.now() > deadline) throw new Error(`serverCount stuck at ${counts}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await execAll(workers, async ({ io }) => {
    io.emit("hello");
    await io.fetchSockets();
  });
  out({ event: "ready", pids: workers.map((w) => w.process.pid) });
  if (mode === "clean") {
    await execAll(workers, ({ io, cluster }) => {
      // After the reply has been sent.
      setImmediate(() => {
        io.close();
        cluster.worker.disconnect();
      });
    });
  }
}
