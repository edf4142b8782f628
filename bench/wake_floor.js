"use strict";
// What one wake-up costs a Node.js process on this machine, with no adapter in
// the way: two Node processes exchange 16-byte messages over a Unix socket.
// The Rust twin (bench/wake_floor.rs) measures the same for native threads;
// `npm run bench:floor` runs both. Every worker of either adapter pays this
// per message it is woken for; the stock adapter's primary pays it too.
//
//   paced one-way: a message every 10 ms (the CPUs idle in between, as at
//                  100 msg/s); latency from the sender's clock to the receiver's
//   back to back:  round trips, each process woken once per round trip; CPU
//                  time of each process per round trip
//   cold call:     the sender, woken by its 10 ms timer, times a trivial call
//                  (a 2-element array to JSON in a Buffer) twice in a row: the
//                  first call after an idle spell pays for cold caches

const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { fork } = require("node:child_process");
const { Histogram } = require("./stats");

// Fewer messages through the environment (the test suite runs it short).
const PACED = Number(process.env.WAKE_FLOOR_PACED) || 300;
const PACE_MS = 10;
const ROUNDS = Number(process.env.WAKE_FLOOR_ROUNDS) || 20_000;
const nowUs = () => Number(process.hrtime.bigint()) / 1e3;
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// Child: connects to the parent's socket, records paced latencies, then echoes.
function child(sockPath) {
  const c = net.connect(sockPath);
  const lat = new Histogram();
  let cpu0 = 0;
  let echoed = 0;
  let pending = Buffer.alloc(0);
  c.on("data", (d) => {
    if (lat.n < PACED) {
      const t = nowUs();
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 16 && lat.n < PACED) {
        lat.record(t - pending.readDoubleLE(0));
        pending = pending.subarray(16);
      }
      if (lat.n === PACED) {
        process.send({ paced: [lat.quantile(0.5), lat.quantile(0.9)] });
        cpu0 = cpuUs();
      }
      return;
    }
    c.write(d); // echo phase: one 16-byte message per round trip
    echoed += d.length / 16;
    if (echoed >= ROUNDS) {
      process.send({ echoCpu: (cpuUs() - cpu0) / ROUNDS }, () => process.exit(0));
    }
  });
  c.on("error", () => process.exit(1));
  setTimeout(() => process.exit(1), 60_000).unref();
}

async function main() {
  const sockPath = path.join(os.tmpdir(), `sio-cluster-rs-floor-${process.pid}.sock`);
  const server = net.createServer();
  await new Promise((resolve) => server.listen(sockPath, resolve));
  const kid = fork(__filename, ["child", sockPath]);
  const guard = setTimeout(() => {
    kid.kill("SIGKILL");
    console.error("wake_floor.js: timed out");
    process.exit(1);
  }, 60_000);
  const conn = await new Promise((resolve) => server.once("connection", resolve));
  const fromKid = (key) => new Promise((resolve) => kid.on("message", (m) => m[key] !== undefined && resolve(m[key])));
  const paced = fromKid("paced");
  const echoCpu = fromKid("echoCpu");

  await new Promise((r) => setTimeout(r, 200));
  const trivial = () => Buffer.from(JSON.stringify(["t", String(process.hrtime.bigint())]));
  const firstCall = new Histogram();
  const secondCall = new Histogram();
  for (let i = 0; i < PACED; i++) {
    await new Promise((r) => setTimeout(r, PACE_MS));
    const t0 = nowUs();
    trivial();
    const t1 = nowUs();
    trivial();
    const t2 = nowUs();
    firstCall.record(t1 - t0);
    secondCall.record(t2 - t1);
    const b = Buffer.allocUnsafe(16);
    b.writeDoubleLE(nowUs(), 0);
    conn.write(b);
  }
  const [p50, p90] = await paced;

  const rtt = new Histogram();
  const msg = Buffer.alloc(16);
  let done = 0;
  let t0 = 0;
  const cpu0 = cpuUs();
  await new Promise((resolve) => {
    conn.on("data", (d) => {
      for (let n = d.length / 16; n > 0; n--) {
        rtt.record(nowUs() - t0);
        if (++done === ROUNDS) return resolve();
      }
      t0 = nowUs();
      conn.write(msg);
    });
    t0 = nowUs();
    conn.write(msg);
  });
  const parentCpu = (cpuUs() - cpu0) / ROUNDS;
  const kidCpu = await echoCpu;

  const row = (...cells) => console.log(`| ${cells.join(" | ")} |`);
  const us = (h, digits = 0) => [h.quantile(0.5).toFixed(digits), h.quantile(0.9).toFixed(digits)];
  row("Node.js processes, Unix socket", "messages", "p50 (µs)", "p90 (µs)", "CPU per round trip, each process (µs)");
  row("---", "---:", "---:", "---:", "---:");
  row(`one-way, paced ${PACE_MS} ms apart`, PACED, p50.toFixed(0), p90.toFixed(0), "");
  row("round trip, back to back", ROUNDS, ...us(rtt), `${parentCpu.toFixed(1)} / ${kidCpu.toFixed(1)}`);
  row(`cold call: first trivial call after a ${PACE_MS} ms timer`, PACED, ...us(firstCall, 1), "");
  row("cold call: the same call right after", PACED, ...us(secondCall, 1), "");
  clearTimeout(guard);
  conn.destroy();
  server.close();
}

if (process.argv[2] === "child") child(process.argv[3]);
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
