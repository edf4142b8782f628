"use strict";
// Smoke test for the chat demo: `node examples/chat/smoke.js` (exit code 0 = pass).
// Starts server.js on a free port, puts two clients on different workers (one with the default
// transports, which start with long-polling and upgrade, one with long-polling only), checks that
// a chat message crosses workers and that the cluster-wide counts add up, then stops the demo.

const { spawn } = require("node:child_process");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { io } = require("socket.io-client");

const HOST = "localhost";
const DEADLINE_MS = 20_000;
// Two workers are the minimum for a cross-worker test, even on a single-core machine.
const WORKERS = Number(process.env.WORKERS) || Math.max(2, os.availableParallelism());

let child;
let output = "";
const clients = [];

// Hard upper bound on the whole run, whatever hangs.
setTimeout(() => fail(`timed out after ${DEADLINE_MS} ms`), DEADLINE_MS).unref();
process.on("exit", () => child && child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));

function fail(msg) {
  console.error(`smoke: FAIL: ${msg}\n--- demo output ---\n${output}`);
  for (const c of clients) c.disconnect();
  process.exit(1);
}

// Wait for an event (or a predicate over it) with a timeout, so no step can hang silently.
function waitFor(emitter, event, what, ms = 5000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    const onEvent = (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(args[0]);
    };
    emitter.on(event, onEvent);
  });
}

// Cluster workers share the primary's port, so PORT=0 would give each its own random port.
// Instead grab a free port from the OS, release it and hand it to the demo.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().once("error", reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Connect a client and learn which worker it landed on. Stats are collected from the start,
// so a broadcast that arrives before we start looking is not lost.
async function connect(url, transports) {
  const socket = io(url, { transports, reconnection: false, forceNew: true });
  clients.push(socket);
  socket.stats = [];
  socket.on("stats", (s) => socket.stats.push(s));
  socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
  socket.hello = await waitFor(socket, "hello", "hello from the server");
  return socket;
}

async function main() {
  const port = await freePort();
  const url = `http://${HOST}:${port}`;
  child = spawn(process.execPath, [path.join(__dirname, "server.js")], {
    env: { ...process.env, PORT: String(port), HOST, WORKERS: String(WORKERS) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => child.stopping || fail(`demo exited early (${signal || code})`));

  await waitFor(child.stdout, "data", "'workers listening' line", 10_000, () => /workers listening/.test(output));
  console.log(`smoke: demo up on ${url} with ${WORKERS} workers`);

  // The balancer puts the second client on another worker at once (least loaded); retry a few
  // times anyway. Extra clients stay connected so the expected user count is simply clients.length.
  const a = await connect(url, ["polling", "websocket"]);
  let b;
  for (let i = 0; i < 10 && !b; i++) {
    const c = await connect(url, ["polling"]);
    if (c.hello.workerId !== a.hello.workerId) b = c;
  }
  if (!b) fail(`all connections landed on worker ${a.hello.workerId}`);
  console.log(`smoke: client A on worker ${a.hello.workerId}, client B (long-polling) on worker ${b.hello.workerId}`);

  // The last connect triggers a broadcast computed after every client joined, so it must show all.
  const full = (s) => s.users === clients.length && s.servers === WORKERS;
  if (!b.stats.some(full)) {
    await waitFor(b, "stats", `stats {users: ${clients.length}, servers: ${WORKERS}}`, 5000, full).catch((e) =>
      fail(`${e.message}; last seen ${JSON.stringify(b.stats.at(-1))}`),
    );
  }
  console.log(`smoke: stats ok (${clients.length} users, ${WORKERS} servers)`);

  const text = `hello across workers <b>${Date.now()}</b>`;
  const received = waitFor(b, "chat", "chat message on client B", 5000, (m) => m.text === text);
  a.emit("chat", text);
  const msg = await received;
  if (msg.from !== a.hello.workerId) fail(`chat came from worker ${msg.from}, expected ${a.hello.workerId}`);
  console.log("smoke: chat message crossed workers");

  // Graceful stop: SIGTERM to the primary must end everything, workers included, with code 0.
  child.stopping = true;
  child.kill("SIGTERM");
  const stopTimer = new Promise((_, reject) => setTimeout(() => reject(new Error("demo did not exit within 8 s")), 8000));
  const { code, signal } = await Promise.race([exited, stopTimer]);
  if (code !== 0) fail(`demo exited with ${signal || code}, expected 0`);
  for (const pid of new Set(clients.map((c) => c.hello.pid))) {
    try {
      process.kill(pid, 0);
      fail(`worker pid ${pid} still alive after the primary exited`);
    } catch (err) {
      if (err.code !== "ESRCH") throw err;
    }
  }
  for (const c of clients) c.disconnect();
  console.log("smoke: demo stopped cleanly\nsmoke: PASS");
  process.exit(0);
}

main().catch((err) => fail(err.stack || err.message));
