"use strict";
// Real PM2 (@socket.io/pm2 6.0.14): its God daemon runs @socket.io/sticky's
// setupMaster on PM2_PORT and the STOCK setupPrimary(); the app's 3 cluster
// instances use OUR adapter, so they speak the ipc transport. Checked through
// real socket.io-client WebSocket connections, then across `pm2 reload` and
// `pm2 delete`, whose logs must show no IPC-channel crash.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFile } = require("node:child_process");
const fs = require("node:fs");
const { freePort } = require("./helpers/free-port");
const os = require("node:os");
const path = require("node:path");
const { connectClient, received, waitFor, bytesOf, delay } = require("./helpers/ipc-cluster");

const ROOT = path.join(__dirname, "..");
const PM2 = path.join(ROOT, "node_modules", ".bin", "pm2");
const ECOSYSTEM = path.join(__dirname, "fixtures", "ipc", "ipc-pm2.ecosystem.config.js");
const APP = "ipc-pm2-app";

describe("PM2 (@socket.io/pm2) cluster mode with our adapter", { timeout: 120_000 }, () => {
  let home;
  let port;
  let env;
  const clients = new Set();

  function pm2(...args) {
    return new Promise((resolve, reject) => {
      execFile(PM2, args, { env, cwd: home, timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`pm2 ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
  }

  async function jlist() {
    const out = await pm2("jlist");
    const line = out.split("\n").find((l) => l.startsWith("["));
    return JSON.parse(line).filter((p) => p.name === APP);
  }

  function logs() {
    const dir = path.join(home, "logs");
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
    files.push(path.join(home, "pm2.log"));
    return files
      .filter((f) => fs.existsSync(f))
      .map((f) => `==> ${path.basename(f)}\n${fs.readFileSync(f, "utf8")}`)
      .join("\n");
  }

  async function connect() {
    const socket = await connectClient(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
    clients.add(socket);
    return socket;
  }

  async function call(socket, event, ...args) {
    const res = await socket.timeout(8000).emitWithAck(event, ...args);
    if (!res.ok) throw new Error(`${event}: ${res.error}`);
    return res.value;
  }

  /** Clients until one sits on each of the 3 instances; returns {pid → socket}. */
  async function onePerWorker(expectedPids) {
    const byPid = new Map();
    for (let i = 0; i < 15 && byPid.size < 3; i++) {
      const s = await connect();
      const me = await call(s, "whoami");
      assert.equal(me.transport, "ipc", "our adapter under PM2 uses the ipc transport");
      if (expectedPids) assert.ok(expectedPids.includes(me.pid), `pid ${me.pid} is one of ${expectedPids}`);
      if (!byPid.has(me.pid)) byPid.set(me.pid, s);
    }
    assert.equal(byPid.size, 3, "clients reached 3 different instances");
    return byPid;
  }

  async function onlinePids() {
    const list = await waitFor(
      async () => {
        const l = await jlist();
        return l.length === 3 && l.every((p) => p.pm2_env.status === "online") && l;
      },
      { timeout: 20_000, interval: 250, message: "3 online instances" },
    );
    return list.map((p) => p.pid);
  }

  async function checkCluster(byPid) {
    const sockets = [...byPid.values()];
    const all = [...clients].filter((s) => s.connected);
    for (const s of sockets) {
      await waitFor(async () => (await call(s, "count")) === 3, { timeout: 5000, message: "serverCount() === 3" });
    }
    // A broadcast from each instance reaches the clients of every instance.
    for (const [pid, s] of byPid) {
      await call(s, "do-broadcast", `from-${pid}`);
      await waitFor(() => all.every((c) => received(c, "bcast").some(([t]) => t === `from-${pid}`)), {
        message: `broadcast from ${pid} at every client`,
      });
      for (const c of all) {
        const [, from, buf] = received(c, "bcast").find(([t]) => t === `from-${pid}`);
        assert.equal(from, pid);
        assert.deepEqual(bytesOf(buf), [1, 2, 3]);
      }
    }
    const fetched = await call(sockets[0], "fetch");
    assert.deepEqual(fetched.map((s) => s.id).sort(), all.map((c) => c.id).sort(), "fetchSockets() returns all");
    assert.deepEqual(new Set(fetched.map((s) => s.pid)), new Set(byPid.keys()));
    for (const [pid, s] of byPid) {
      const others = await call(s, "sse");
      assert.deepEqual(others.sort(), [...byPid.keys()].filter((p) => p !== pid).sort(), "serverSideEmitWithAck answers");
    }
    const acked = await call(sockets[1], "ack-all");
    assert.deepEqual(acked.sort(), all.map((c) => c.id).sort(), "emitWithAck collects every client");
  }

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "ipc-pm2-"));
    // The "touch" file marks a PM2 home as already greeted (no banner, no version check).
    fs.writeFileSync(path.join(home, "touch"), String(Date.now()));
    port = await freePort();
    env = { ...process.env, PM2_HOME: home, PM2_PORT: String(port), PM2_DISABLE_VERSION_CHECK: "true" };
    delete env.SOCKET_IO_CLUSTER_RS_HUB;
    delete env.NODE_CHANNEL_SERIALIZATION_MODE;
    delete env.NODE_TEST_CONTEXT;
    await pm2("start", ECOSYSTEM);
  });

  after(async () => {
    for (const c of clients) c.close();
    if (!home) return;
    let daemonPid = null;
    try {
      daemonPid = Number(fs.readFileSync(path.join(home, "pm2.pid"), "utf8"));
    } catch {}
    let appPids = [];
    try {
      appPids = (await jlist()).map((p) => p.pid).filter(Boolean);
    } catch {}
    try {
      await pm2("kill");
    } catch (err) {
      console.error(err.message);
    }
    // Whatever survived `pm2 kill` (it should not): only processes this test started.
    for (const pid of [daemonPid, ...appPids].filter(Boolean)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    fs.rmSync(home, { recursive: true, force: true });
  });

  let firstPids;

  it("3 instances come online and sticky + our adapter serve clients across instances", async () => {
    firstPids = await onlinePids();
    await waitFor(() => logs().split(/ready, transport=ipc/).length - 1 >= 3, {
      timeout: 10_000,
      message: "3 instances logging 'ready, transport=ipc'",
    });
    const byPid = await onePerWorker(firstPids);
    await checkCluster(byPid);
    const list = await jlist();
    assert.deepEqual(list.map((p) => p.pm2_env.restart_time), [0, 0, 0], "no instance restarted");
  });

  it("pm2 reload: new instances form a cluster of 3 again", async () => {
    for (const c of clients) c.close();
    clients.clear();
    await pm2("reload", APP);
    const pids = await waitFor(
      async () => {
        const p = await onlinePids();
        return p.every((x) => !firstPids.includes(x)) && p;
      },
      { timeout: 20_000, interval: 250, message: "3 new online instances" },
    );
    const byPid = await onePerWorker(pids);
    // serverCount() must come back to 3 promptly: the old instances said goodbye on close.
    await checkCluster(byPid);
  });

  it("pm2 delete: instances stop without IPC errors; logs are clean", async () => {
    for (const c of clients) c.close();
    clients.clear();
    await pm2("delete", APP);
    await waitFor(async () => (await jlist()).length === 0, { timeout: 15_000, interval: 250, message: "app deleted" });
    await delay(300);
    const text = logs();
    assert.doesNotMatch(text, /ERR_IPC_CHANNEL_CLOSED|EPIPE|ERR_IPC_DISCONNECTED/, text);
    assert.doesNotMatch(text, /Unhandled|uncaught|TypeError|RangeError/i, text);
    const exits = text.match(/App \[ipc-pm2-app:(?:_old_)?\d+\] exited with code \[\d+\][^\n]*/g) || [];
    assert.equal(exits.length, 6, `3 reloaded + 3 deleted instances exited:\n${exits.join("\n")}`);
    for (const line of exits) assert.match(line, /code \[0\]/, line);
    assert.equal((text.match(/ready, transport=ipc/g) || []).length, 6);
  });
});
