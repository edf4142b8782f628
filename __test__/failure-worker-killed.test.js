"use strict";
// Failures: a worker SIGKILLed in the middle of requests, the node list
// after a crash, and processes that must exit by themselves (a worker after
// io.close() and disconnect, a primary once its workers are gone).
//
// The stock package only forgets a crashed worker after its heartbeat
// timeout (~10 s) and its requests wait for the 5 s request timeout: those
// tests are skipped (with the reason) under ADAPTER_MODULE=@socket.io/cluster-adapter.

const { describe, it, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { startCluster, nextEvent, waitFor, withTimeout } = require("./helpers/cluster");
const { oursOnly } = require("./helpers/adapter-module");

const T = { timeout: 20_000 };
const CRASH_SKIP = oursOnly("a SIGKILLed worker is only forgotten after heartbeatTimeout (10 s); requests wait 5 s and time out");

let current = null;
async function cluster(options) {
  current = await startCluster({ workers: 3, ...options });
  return current;
}
afterEach(async () => {
  if (current) await current.close();
  current = null;
});

/** Blocks the event loop of worker `i` for `ms` (fire and forget: the worker is about to be killed). */
function block(c, i, ms) {
  c.exec(
    i,
    (_, ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end);
    },
    ms,
    { timeout: ms + 5000 },
  ).catch(() => {});
}

describe("worker SIGKILLed while requests are pending", () => {
  it("a pending fetchSockets() resolves with the survivors' sockets well under 1 s after the kill", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    const clients = await c.connectAll();
    // Worker 2 cannot answer (its event loop is blocked) when the request goes out.
    block(c, 2, 4000);
    await new Promise((r) => setTimeout(r, 100));
    await c.exec(0, ({ io, state }) => {
      state.fetch = io.fetchSockets().then(
        (sockets) => ({ ok: true, ids: sockets.map((s) => s.id), t: Date.now() }),
        (err) => ({ ok: false, message: err.message, t: Date.now() }),
      );
    });
    await new Promise((r) => setTimeout(r, 100));
    const { sentAt } = await c.kill(2);
    const res = await c.exec(0, ({ state }) => state.fetch, null, { timeout: 8000 });
    assert.equal(res.ok, true, `fetchSockets failed: ${res.message}`);
    assert.deepEqual(new Set(res.ids), new Set([clients[0].id, clients[1].id]));
    const ms = res.t - sentAt;
    assert.ok(ms < 1000, `resolved ${ms} ms after the kill`);
  });

  it("a pending serverSideEmitWithAck() resolves with the survivors' answers well under 1 s after the kill", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    await c.exec(1, ({ io }) => void io.on("ping", (cb) => cb("pong-1")));
    await c.exec(2, ({ io }) => void io.on("ping", () => {})); // never answers
    await c.exec(0, ({ io, state }) => {
      state.ssEmit = io.serverSideEmitWithAck("ping").then(
        (responses) => ({ ok: true, responses, t: Date.now() }),
        (err) => ({ ok: false, message: err.message, responses: err.responses, t: Date.now() }),
      );
    });
    await new Promise((r) => setTimeout(r, 150));
    const { sentAt } = await c.kill(2);
    const res = await c.exec(0, ({ state }) => state.ssEmit, null, { timeout: 8000 });
    assert.deepEqual(res.responses, ["pong-1"]);
    assert.equal(res.ok, true, `serverSideEmitWithAck failed: ${res.message}`);
    const ms = res.t - sentAt;
    assert.ok(ms < 1000, `resolved ${ms} ms after the kill`);
  });

  it("a pending broadcast with acks settles with the survivors' acks instead of timing out", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    const clients = await c.connectAll();
    clients[0].on("q", (cb) => cb("a0"));
    clients[1].on("q", (cb) => cb("a1"));
    const delivered = nextEvent(clients[2], "q"); // and never answered
    await c.exec(0, ({ io, state }) => {
      state.acks = new Promise((resolve) =>
        io.timeout(4000).emit("q", (err, responses) => resolve({ err, responses, t: Date.now() })),
      );
    });
    await delivered;
    const { sentAt } = await c.kill(2);
    const res = await c.exec(0, ({ state }) => state.acks, null, { timeout: 8000 });
    assert.equal(res.err, null);
    assert.deepEqual([...res.responses].sort(), ["a0", "a1"]);
    const ms = res.t - sentAt;
    assert.ok(ms < 1000, `settled ${ms} ms after the kill`);
  });
});

describe("node list after a crash", () => {
  it("serverCount() drops on the survivors within ~200 ms of a SIGKILL", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    const { sentAt } = await c.kill(1);
    await c.waitForServerCount(2, { workers: [0, 2], timeout: 3000 });
    const seen = await c.exec(0, () => Date.now());
    const ms = seen - sentAt;
    // waitForServerCount polls through the primary, so allow a little more than 200 ms.
    assert.ok(ms < 500, `serverCount() dropped ${ms} ms after the kill`);
  });

  it("after a crash, new requests and broadcasts go to the survivors at once", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    const clients = await c.connectAll();
    await c.kill(1);
    const res = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      const sockets = await io.fetchSockets();
      return { ids: sockets.map((s) => s.id), ms: Date.now() - t0 };
    });
    assert.deepEqual(new Set(res.ids), new Set([clients[0].id, clients[2].id]));
    assert.ok(res.ms < 1000, `fetchSockets took ${res.ms} ms`);
    const got = nextEvent(clients[2], "after");
    await c.exec(0, ({ io }) => void io.emit("after", 1));
    assert.deepEqual(await got, [1]);
  });

  it("a replacement worker is counted by everyone, the dead one by no one", { ...T, skip: CRASH_SKIP }, async () => {
    const c = await cluster();
    await c.kill(2);
    const index = await c.fork();
    await c.waitForServerCount(3, { workers: [0, 1, index], timeout: 3000 });
    const client = await c.connect(index);
    const ids = await c.exec(0, async ({ io }) => (await io.fetchSockets()).map((s) => s.id));
    assert.deepEqual(ids, [client.id]);
  });

  it("survivors keep working after a SIGKILL (stock semantics: broadcasts still flow)", T, async () => {
    const c = await cluster();
    const clients = await c.connectAll();
    await c.kill(2);
    const got = Promise.all([nextEvent(clients[0], "still"), nextEvent(clients[1], "still")]);
    await c.exec(1, ({ io }) => void io.emit("still", "here"));
    assert.deepEqual(await got, [["here"], ["here"]]);
  });
});

describe("processes exit by themselves", () => {
  it("a worker exits within a few seconds after io.close() and cluster.worker.disconnect()", T, async () => {
    const c = await cluster();
    const clients = await c.connectAll();
    // Some state in flight: another namespace, a room, a finished request.
    await c.exec(1, async ({ io }) => {
      io.of("/other");
      await io.fetchSockets();
      await io.in("nobody").timeout(200).emitWithAck("x");
    });
    const gone = nextEvent(clients[1], "disconnect");
    const t = await c.exec(1, ({ io, cluster }) => {
      setImmediate(() => {
        io.close();
        cluster.worker.disconnect();
      });
      return Date.now();
    });
    await gone;
    const exit = await c.waitExit(1, 8000);
    assert.equal(exit.signal, null);
    assert.equal(exit.code, 0);
    const ms = exit.t - t;
    assert.ok(ms < 3000, `worker exited ${ms} ms after closing`);
    // The others are fine.
    await c.waitForServerCount(2, { workers: [0, 2], timeout: 3000 });
  });

  /** Runs fixtures/standalone-primary.js with no IPC channel and reports its progress and exit. */
  function runStandalonePrimary(mode, onEvent) {
    const child = spawn(process.execPath, [path.join(__dirname, "fixtures", "standalone-primary.js")], {
      env: { ...process.env, STANDALONE_MODE: mode, STANDALONE_WORKERS: "2" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let buffered = "";
    const pids = [];
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", (d) => {
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let ev;
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        if (ev.pids) pids.push(...ev.pids);
        onEvent(ev);
      }
    });
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, t: Date.now() })));
    const kill = () => {
      for (const pid of [...pids, child.pid]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    };
    return { child, exited, kill, pids, stderr: () => stderr };
  }

  it("a primary that called setupPrimary() exits once its workers have exited cleanly", T, async (t) => {
    let workersExitedAt = null;
    const run = runStandalonePrimary("clean", (ev) => {
      if (ev.event === "workers-exited") workersExitedAt = ev.t;
    });
    t.after(run.kill);
    const exit = await withTimeout(run.exited, 15_000, `standalone primary exit; stderr:\n${run.stderr()}`);
    assert.ok(workersExitedAt, `the workers never exited; stderr:\n${run.stderr()}`);
    assert.equal(exit.signal, null);
    assert.equal(exit.code, 0, `stderr:\n${run.stderr()}`);
    const ms = exit.t - workersExitedAt;
    assert.ok(ms < 3000, `primary exited ${ms} ms after its last worker`);
  });

  it("a primary that called setupPrimary() exits once its workers were SIGKILLed", T, async (t) => {
    let readyPids = null;
    let workersExitedAt = null;
    const run = runStandalonePrimary("crash", (ev) => {
      if (ev.event === "ready") readyPids = ev.pids;
      if (ev.event === "workers-exited") workersExitedAt = ev.t;
    });
    t.after(run.kill);
    await waitFor(() => readyPids, 10_000, `standalone workers ready; stderr:\n${run.stderr()}`);
    for (const pid of readyPids) process.kill(pid, "SIGKILL");
    const exit = await withTimeout(run.exited, 10_000, `standalone primary exit; stderr:\n${run.stderr()}`);
    assert.ok(workersExitedAt, "the primary did not see its workers exit");
    assert.equal(exit.signal, null);
    assert.equal(exit.code, 0, `stderr:\n${run.stderr()}`);
    const ms = exit.t - workersExitedAt;
    assert.ok(ms < 3000, `primary exited ${ms} ms after its last worker`);
  });
});
