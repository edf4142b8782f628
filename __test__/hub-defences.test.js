"use strict";
// The hub's defences, against a real hub socket: malformed and hostile
// peers are dropped with a logged reason and never take the hub down; only
// our own user gets in; stale and unsafe socket locations are handled.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn, spawnSync } = require("node:child_process");

const root = path.join(__dirname, "..");
const binding = require("../lib/native");

const { PRIMARY_DEFAULTS } = require("../lib/options");

const PROTOCOL = binding.protocolVersion();

/** A hub in this process, on a fresh private directory. */
function startHub(t, limits = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sioc-hubtest-"));
  fs.chmodSync(dir, 0o700);
  const sock = path.join(dir, "hub.sock");
  const events = [];
  let notify = () => {};
  const hub = new binding.Hub(
    sock,
    { ...PRIMARY_DEFAULTS, maxFrameSize: 1 << 20, queueSoftLimit: 1 << 20, queueHardLimit: 1 << 21, ...limits },
    (ev) => {
      events.push(ev);
      notify();
    },
  );
  t.after(() => {
    hub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const waitFor = (pred, ms = 3000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching hub event in ${JSON.stringify(events)}`)), ms);
      const check = () => {
        const ev = events.find(pred);
        if (ev) {
          clearTimeout(timer);
          resolve(ev);
        }
      };
      notify = check;
      check();
    });
  return { hub, sock, dir, events, waitFor };
}

/** Connects a real worker link and resolves with its first event. */
function linkUp(sock) {
  return new Promise((resolve, reject) => {
    // The link's callback is weak (it never keeps a process alive), so this
    // timer is what keeps the test waiting.
    const timer = setTimeout(() => reject(new Error("no event from the link")), 5000);
    const limits = { heartbeatTimeout: 10_000, maxFrameSize: 1 << 20, queueSoftLimit: 1 << 20, queueHardLimit: 1 << 21 };
    const link = new binding.Link(sock, limits, () => {
      const buf = link.drain(1);
      link.close();
      clearTimeout(timer);
      // First record of the batch (layout in src/batch.rs): type, length, body;
      // a Down record's body is its reason.
      const t = buf[0];
      resolve({ t, reason: t === 2 ? buf.toString("utf8", 9, 9 + buf.readUInt32LE(5)) : undefined });
    });
  });
}

function rawSend(sock, bytes) {
  return new Promise((resolve) => {
    const c = net.createConnection(sock, () => c.end(bytes));
    c.on("error", () => {});
    c.on("close", resolve);
    c.resume();
  });
}

function frame(body) {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([len, body]);
}

/** A Hello frame as rmp-serde writes it: {"Hello": [version, pid, heartbeatTimeoutMs]}. */
function helloFrame(version) {
  const header = Buffer.concat([
    Buffer.from([0x81, 0xa5]),
    Buffer.from("Hello"),
    Buffer.from([0x93, 0xce]),
    u32be(version),
    Buffer.from([0xce]),
    u32be(process.pid),
    Buffer.from([0xce]),
    u32be(10_000),
  ]);
  const hlen = Buffer.alloc(4);
  hlen.writeUInt32LE(header.length);
  return frame(Buffer.concat([hlen, header]));
}

function u32le(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u32be(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

test("a worker link completes the handshake", async (t) => {
  const { sock, waitFor } = startHub(t);
  const ev = await linkUp(sock);
  assert.equal(ev.t, 1, `expected an Up event, got ${JSON.stringify(ev)}`);
  const connected = await waitFor((e) => e.kind === "connected");
  assert.equal(connected.pid, process.pid);
});

test("garbage bytes are refused with a reason and the hub keeps serving", async (t) => {
  const { sock, waitFor } = startHub(t);
  await rawSend(sock, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const refused = await waitFor((e) => e.kind === "refused");
  assert.match(refused.reason, /bad handshake|exceeds the maximum|malformed|truncated/);
  assert.equal((await linkUp(sock)).t, 1);
});

test("a lying length prefix is refused before anything is buffered", async (t) => {
  const { sock, waitFor } = startHub(t);
  const lie = Buffer.alloc(4);
  lie.writeUInt32LE(0xffff_fff0);
  await rawSend(sock, lie);
  const refused = await waitFor((e) => e.kind === "refused");
  assert.match(refused.reason, /exceeds the maximum/);
  assert.equal((await linkUp(sock)).t, 1);
});

test("a truncated frame is refused", async (t) => {
  const { sock, waitFor } = startHub(t);
  await rawSend(sock, helloFrame(PROTOCOL).subarray(0, 12));
  const refused = await waitFor((e) => e.kind === "refused");
  assert.match(refused.reason, /truncated/);
});

test("another protocol version is refused with a clear reason", async (t) => {
  const { sock, waitFor } = startHub(t);
  await rawSend(sock, helloFrame(999));
  const refused = await waitFor((e) => e.kind === "refused");
  assert.match(refused.reason, new RegExp(`protocol version mismatch.*speaks 999, hub speaks ${PROTOCOL}\\b`));
});

test("garbage after a valid handshake drops that worker with a logged reason", async (t) => {
  const { sock, waitFor } = startHub(t);
  const body = Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from([0xc1, 0xc1, 0xc1])]);
  await rawSend(sock, Buffer.concat([helloFrame(PROTOCOL), frame(body)]));
  const dropped = await waitFor((e) => e.kind === "disconnected" && e.reason);
  assert.match(dropped.reason, /malformed frame header/);
  assert.equal((await linkUp(sock)).t, 1);
});

test("the link reports a clear error when the hub refuses it", async (t) => {
  // A server that answers every Hello with garbage instead of Welcome.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sioc-fake-"));
  const sock = path.join(dir, "fake.sock");
  const server = net.createServer((c) => c.end(Buffer.from([1, 0, 0, 0, 0])));
  await new Promise((r) => server.listen(sock, r));
  t.after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ev = await linkUp(sock);
  assert.equal(ev.t, 2, "expected a Down event");
  assert.match(ev.reason, /handshake/);
});

test("garbage from the hub after the handshake takes the worker's link down with a clear reason, not the worker", async (t) => {
  // A server that welcomes the worker, then sends a frame whose header is not msgpack.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sioc-fake-"));
  const sock = path.join(dir, "fake.sock");
  const welcome = frame(
    Buffer.concat([
      u32le(17),
      Buffer.from([0x81, 0xa7]),
      Buffer.from("Welcome"),
      // [version, node 7, max_frame 1 MiB]
      Buffer.from([0x93, PROTOCOL, 0x07, 0xce, 0x00, 0x10, 0x00, 0x00]),
    ]),
  );
  const garbage = frame(Buffer.concat([u32le(3), Buffer.from([0xc1, 0xc1, 0xc1])]));
  const server = net.createServer((c) => {
    c.on("error", () => {});
    c.once("data", () => c.write(Buffer.concat([welcome, garbage])));
  });
  await new Promise((r) => server.listen(sock, r));
  const { acquireLink } = require("../lib/link");
  const link = acquireLink(sock, require("../lib/options").resolveOptions({ maxFrameSize: 1 << 20 }));
  t.after(() => {
    link.close();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const t0 = Date.now();
  while (link.downReason === null && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(link.node, 7, "the Welcome was read");
  assert.match(String(link.downReason), /bad frame from the hub/);
  assert.throws(() => link.assertUp(), /the hub is unreachable \(bad frame from the hub/);
});

test(
  "only our own user gets in: the 0700 directory blocks others, and so does the peer uid check",
  { skip: process.getuid() !== 0 && "switching to another user needs root (CI runs as root)" },
  async (t) => {
    const { sock, dir, waitFor } = startHub(t);
    const attempt = () =>
      spawnSync(
        "setpriv",
        [
          "--reuid=nobody",
          "--regid=nogroup",
          "--clear-groups",
          process.execPath,
          "-e",
          `const c = require("net").createConnection(${JSON.stringify(sock)});
           c.on("error", (e) => { console.log("error " + e.code); process.exit(0); });
           c.on("data", (d) => console.log("data " + d.toString("latin1")));
           c.on("close", () => { console.log("closed"); process.exit(0); });
           setTimeout(() => { console.log("hung"); process.exit(1); }, 3000);`,
        ],
        { encoding: "utf8", timeout: 10_000 },
      );
    // First layer: the directory is 0700, so the socket cannot even be reached.
    const blocked = attempt();
    assert.match(blocked.stdout, /error EACCES/, blocked.stdout + blocked.stderr);
    // Second layer: make the socket reachable on purpose; the hub still refuses.
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(sock, 0o777);
    const refusedRun = attempt();
    assert.match(refusedRun.stdout, /Refused/, refusedRun.stdout + refusedRun.stderr);
    const refused = await waitFor((e) => e.kind === "refused" && /uid 65534/.test(e.reason));
    assert.match(refused.reason, /uid 65534 \(pid \d+\) refused: only uid 0 may connect/);
  },
);

const SIGNAL_PRIMARY = path.join(__dirname, "fixtures", "signal-primary.js");
const LINUX = process.platform === "linux" ? false : "the hub's address is a socket file outside Linux";

/** Starts fixtures/signal-primary.js; resolves with its report line and the child. */
function startSignalPrimary(t, env = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sioc-tmp-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const child = spawn(process.execPath, [SIGNAL_PRIMARY], {
    env: { ...process.env, TMPDIR: tmp, SOCKET_IO_CLUSTER_RS_HUB: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.after(() => child.kill("SIGKILL"));
  let out = "";
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const report = new Promise((resolve, reject) => {
    let line = "";
    child.stdout.on("data", (d) => {
      line += d;
      if (line.includes("\n")) resolve(JSON.parse(line.split("\n")[0]));
    });
    child.on("exit", () => reject(new Error(`the primary exited before reporting:\n${out}`)));
  });
  return { child, tmp, report, exited, output: () => out };
}

/** True while something listens at the abstract socket `address` ("@name"). */
function listening(address) {
  const name = address.slice(1);
  return fs
    .readFileSync("/proc/net/unix", "utf8")
    .split("\n")
    .some((l) => l.endsWith(` @${name}`));
}

for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"]) {
  test(`a primary ended by ${signal} (no handler of its own) leaves nothing behind`, { skip: LINUX, timeout: 30_000 }, async (t) => {
    const p = startSignalPrimary(t);
    const report = await p.report;
    assert.deepEqual(report.transports, ["native", "native"], p.output());
    assert.equal(report.crossed, true);
    assert.match(report.address, /^@socket\.io-cluster-rs-\d+-\d+$/);
    assert.ok(listening(report.address), "the hub listens while the primary runs");
    p.child.kill(signal);
    assert.equal((await p.exited).signal, signal);
    // Its workers exit with it (cluster workers do when their primary dies).
    await waitUntil(() => report.pids.every((pid) => !alive(pid)), 5000, "the workers to exit");
    assert.equal(listening(report.address), false, "the address is free again");
    assert.deepEqual(fs.readdirSync(p.tmp), [], "no file or directory left in TMPDIR");
  });
}

test(
  "another user holding the hub's address cannot stop the cluster: one warning each, and it runs on ipc",
  { skip: LINUX || (process.getuid() !== 0 && "taking the address as another user needs root (CI runs as root)"), timeout: 30_000 },
  async (t) => {
    const p = startSignalPrimary(t, { SQUAT_AS: "nobody" });
    const report = await p.report;
    assert.equal(report.address, null, "no hub");
    assert.deepEqual(report.transports, ["ipc", "ipc"], p.output());
    assert.equal(report.crossed, true, "the workers still reach each other");
    const out = p.output();
    assert.match(out, /cannot start the hub \(the address @socket\.io-cluster-rs-0-\d+ is already taken by uid 65534\)/);
    assert.equal(out.match(/cannot use the hub \(.*belongs to uid 65534/g).length, 2, out);
    p.child.kill("SIGTERM");
    await p.exited;
  },
);

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The soft limit on open descriptors of this process. */
function descriptorLimit() {
  const line = fs.readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  return Number(line.split(/\s+/)[3]);
}

function openDescriptors() {
  return fs.readdirSync("/proc/self/fd").length;
}

/** Resolves once `n` connections to `sock` are open (or refused); they stay open until `close()`. */
async function flood(sock, n) {
  const conns = [];
  for (let done = 0; done < n; ) {
    const batch = Math.min(500, n - done);
    await Promise.all(
      Array.from({ length: batch }, () => new Promise((resolve) => {
        const c = net.createConnection(sock);
        c.on("error", () => {});
        c.on("connect", resolve);
        c.on("close", resolve);
        conns.push(c);
      })),
    );
    done += batch;
  }
  return { close: () => conns.forEach((c) => c.destroy()) };
}

test(
  "a flood of idle connections cannot take the primary's descriptors: it still forks, and a worker still gets in",
  { skip: process.platform !== "linux" && "reads /proc", timeout: 60_000 },
  async (t) => {
    const { sock, hub, waitFor } = startHub(t, { maxConnections: 64 });
    const baseline = openDescriptors();
    // The 10,500, or what this process's own descriptor limit allows.
    const n = Math.min(10_500, descriptorLimit() - baseline - 512);
    const f = await flood(sock, n);
    t.after(() => f.close());
    await waitFor((e) => e.kind === "refused" && /too many connections/.test(e.reason));
    // The hub holds at most maxConnections (two descriptors each).
    assert.ok(hub.stats().connections <= 64, JSON.stringify(hub.stats().connections));
    const held = openDescriptors() - baseline - n;
    assert.ok(held <= 2 * 64 + 32, `the hub holds ${held} descriptors`);
    // The primary can still start a process.
    assert.equal(spawnSync(process.execPath, ["-e", "0"]).status, 0);
    // A worker gets in once idle connections time out of their handshake.
    const deadline = Date.now() + 15_000;
    let ev;
    do ev = await linkUp(sock);
    while (ev.t !== 1 && Date.now() < deadline);
    assert.equal(ev.t, 1, `a worker link could not get in: ${JSON.stringify(ev)}`);
  },
);

test("peers that send most of a large frame and stop cannot make the hub hold more than incomingLimit; they are dropped after frameTimeout", { timeout: 30_000 }, async (t) => {
  const MiB = 1 << 20;
  const { sock, hub, events, waitFor } = startHub(t, { maxFrameSize: 8 * MiB, incomingLimit: 8 * MiB, frameTimeout: 1500 });
  const chunk = Buffer.alloc(64 * 1024, 7);
  const peers = [];
  for (let i = 0; i < 6; i++) {
    const c = net.createConnection(sock);
    c.on("error", () => {});
    peers.push(c);
    // A valid handshake, then a frame announced at 8 MiB of which 7.9 MiB come.
    c.write(helloFrame(PROTOCOL));
    c.write(u32le(8 * MiB - 64));
    for (let sent = 0; sent < 8 * MiB - 128 * 1024; sent += chunk.length) c.write(chunk);
  }
  t.after(() => peers.forEach((c) => c.destroy()));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, hub.stats().incomingBytes)), 5);
  t.after(() => clearInterval(sampler));
  const dropped = () => events.filter((e) => e.kind === "disconnected" && /did not arrive whole within 1500 ms/.test(e.reason)).length;
  await waitFor(() => dropped() === 6, 5000);
  clearInterval(sampler);
  // One read (256 KiB) past the limit per connection at most.
  assert.ok(peak <= 8 * MiB + 6 * 256 * 1024, `held ${(peak / MiB).toFixed(1)} MiB of unfinished frames`);
  assert.ok(peak >= 4 * MiB, "the peers did get data in");
  assert.equal(hub.stats().incomingBytes, 0, "given back");
  assert.equal((await linkUp(sock)).t, 1);
});
