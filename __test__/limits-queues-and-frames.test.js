"use strict";
// Limits a worker can run into (README, "Options"; docs/failure-behaviour.md):
// the opt-in partialResults mode, messages over maxFrameSize, a worker too
// slow to read while another floods it (bounded hub queues, drops counted and
// reported), and messages of up to 8 MiB.

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { clusterFor, waitFor, nextEvent, sleep } = require("./helpers/cluster");

const T = { timeout: 40_000 };

/** The hub counts `workers` workers, and a broadcast from worker `from` reaches `client`. */
async function assertConnected(c, workers, client, from) {
  await c.waitForServerCount(workers);
  const got = nextEvent(client, "still-connected", 3000);
  await c.exec(from, ({ io }) => io.emit("still-connected", 1));
  await got;
}

/** Blocks the event loop of worker `i` for `ms`; resolves when it is free again. */
function block(c, i, ms) {
  return c.exec(
    i,
    (_, ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end);
    },
    ms,
    { timeout: ms + 5000 },
  );
}

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

describe("partialResults", () => {
  it("a fetchSockets() / serverSideEmitWithAck() that times out resolves with what arrived and who is missing", T, async (t) => {
    const c = await clusterFor(t, { adapterOpts: { partialResults: true, requestsTimeout: 400 } });
    const clients = await c.connectAll();
    await c.execAll(({ io }) => io.on("who", (cb) => cb(process.pid)));
    const busy = block(c, 2, 1500);
    await sleep(50); // worker 2 is inside its busy loop now
    const r = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      const sockets = await io.fetchSockets();
      const t1 = Date.now();
      const answers = await io.serverSideEmitWithAck("who");
      return {
        ids: sockets.map((s) => s.id),
        incomplete: sockets.incomplete,
        missing: sockets.missing,
        fetchMs: t1 - t0,
        answers: [...answers],
        sseIncomplete: answers.incomplete,
        sseMissing: answers.missing,
      };
    });
    await busy;
    const pid2 = c.workers[2].pid;
    assert.deepEqual(new Set(r.ids), new Set([clients[0].id, clients[1].id]));
    assert.equal(r.incomplete, true);
    assert.deepEqual(r.missing, [pid2]);
    assert.ok(r.fetchMs >= 350 && r.fetchMs < 1400, `resolved after ${r.fetchMs} ms (requestsTimeout 400)`);
    assert.deepEqual(r.answers, [c.workers[1].pid]);
    assert.equal(r.sseIncomplete, true);
    assert.deepEqual(r.sseMissing, [pid2]);
    // A complete answer is not marked.
    const full = await c.exec(0, async ({ io }) => {
      const s = await io.fetchSockets();
      return { n: s.length, incomplete: s.incomplete === true };
    });
    assert.deepEqual(full, { n: 3, incomplete: false });
  });
});

describe("a worker whose event loop is blocked past heartbeatTimeout", () => {
  it("requests stop waiting for it, and it answers again once it recovers", T, async (t) => {
    const c = await clusterFor(t, { adapterOpts: { heartbeatInterval: 100, heartbeatTimeout: 400, requestsTimeout: 5000 } });
    const clients = await c.connectAll();
    const busy = block(c, 2, 2500);
    await sleep(50);
    // Pending while worker 2 is still counted: settles when the hub gives up on it.
    const pending = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      const ids = (await io.fetchSockets()).map((s) => s.id);
      return { ids, ms: Date.now() - t0 };
    }, null, { timeout: 8000 });
    assert.deepEqual(new Set(pending.ids), new Set([clients[0].id, clients[1].id]));
    assert.ok(pending.ms < 1500, `a pending fetchSockets() took ${pending.ms} ms (heartbeatTimeout 400, requestsTimeout 5000)`);
    // Asked while it is out: not waited for at all.
    const later = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      const ids = (await io.fetchSockets()).map((s) => s.id);
      return { ids, ms: Date.now() - t0 };
    });
    assert.equal(later.ids.length, 2);
    assert.ok(later.ms < 200, `fetchSockets() took ${later.ms} ms while worker 2 was out`);
    await busy;
    await c.waitForServerCount(3, { timeout: 3000 });
    const back = await c.exec(0, async ({ io }) => (await io.fetchSockets()).length);
    assert.equal(back, 3);
  });

  it("an emitWithAck() still waiting for another worker when it comes back completes, without counting its late acks", T, async (t) => {
    const c = await clusterFor(t, { adapterOpts: { heartbeatInterval: 100, heartbeatTimeout: 400, requestsTimeout: 5000 } });
    const clients = await c.connectAll();
    clients.forEach((cl, i) => cl.on("ask", (cb) => setTimeout(() => cb(`client-${i}`), i === 1 ? 1500 : 0)));
    const busy = block(c, 2, 900);
    await sleep(50);
    const r = await c.exec(0, async ({ io }) => {
      const t0 = Date.now();
      try {
        const answers = await io.timeout(5000).emitWithAck("ask");
        return { answers: answers.sort(), ms: Date.now() - t0 };
      } catch (err) {
        return { error: err.message, ms: Date.now() - t0 };
      }
    }, null, { timeout: 10_000 });
    await busy;
    // Worker 2 was dropped from the emit while blocked (its client's answer,
    // sent once it was free, comes too late); client-1 answers after 1.5 s.
    assert.equal(r.error, undefined, `the emit failed after ${r.ms} ms: ${r.error}`);
    assert.deepEqual(r.answers, ["client-0", "client-1"]);
    assert.ok(r.ms >= 1400 && r.ms < 3000, `settled after ${r.ms} ms`);
  });
});

describe("maxFrameSize", () => {
  it("a larger emit throws a RangeError naming the option; local clients still get it; the link stays healthy", T, async (t) => {
    const c = await clusterFor(t, { adapterOpts: { maxFrameSize: 64 * 1024 } });
    const clients = await c.connectAll();
    const remote = [];
    clients[1].on("big", () => remote.push(1));
    clients[2].on("big", () => remote.push(2));
    const localBig = nextEvent(clients[0], "big", 3000);
    const r = await c.exec(0, ({ io }) => {
      const out = {};
      try {
        io.emit("big", "x".repeat(100 * 1024));
        out.emit = "no error";
      } catch (err) {
        out.emit = { name: err.name, code: err.code, message: err.message };
      }
      try {
        io.serverSideEmit("big", "y".repeat(100 * 1024));
        out.sse = "no error";
      } catch (err) {
        out.sse = { name: err.name, code: err.code, message: err.message };
      }
      return out;
    });
    for (const what of ["emit", "sse"]) {
      assert.equal(r[what].name, "RangeError", `${what}: ${JSON.stringify(r[what])}`);
      assert.equal(r[what].code, "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE");
      assert.match(r[what].message, /maxFrameSize/);
    }
    const [payload] = await localBig;
    assert.equal(payload.length, 100 * 1024);
    // The connection is still fine: a normal broadcast reaches everyone.
    const after = clients.map((s) => nextEvent(s, "small", 3000));
    await c.exec(0, ({ io }) => io.emit("small", 1));
    await Promise.all(after);
    assert.deepEqual(remote, []);
    await c.waitForServerCount(3);
  });
});

describe("maxFrameSize, counted exactly", () => {
  it("an emit just under the limit with a long room name is either refused with a RangeError or delivered; the link stays up", T, async (t) => {
    const M = 64 * 1024;
    const c = await clusterFor(t, { workers: 2, adapterOpts: { maxFrameSize: M }, primaryOpts: { maxFrameSize: M } });
    const member = await c.connect(1);
    const room = "r".repeat(300); // a hub header far longer than a short room's
    await c.exec(1, ({ socketOf }, { id, room }) => socketOf(id).join(room), { id: member.id, room });
    const got = nextEvent(member, "edge", 5000);
    // Walk down from the limit to the first size the worker accepts: the hub
    // must accept it too (before, the worker counted ~64 bytes for the
    // header, and a frame the hub refused cost the worker its connection).
    const r = await c.exec(0, ({ io }, { M, room }) => {
      let refused = 0;
      for (let size = M; size > M - 1000; size--) {
        try {
          io.to(room).emit("edge", "a".repeat(size));
          return { size, refused };
        } catch (err) {
          if (err.code !== "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE") throw err;
          refused++;
        }
      }
      return { size: 0, refused };
    }, { M, room });
    assert.ok(r.size > 0 && r.refused > 0, JSON.stringify(r));
    const [payload] = await got;
    assert.equal(payload.length, r.size);
    await assertConnected(c, 2, member, 0);
  });
});

describe("maxFrameSize, per worker", () => {
  it("a worker with a smaller limit still receives the others' larger messages, and keeps its own limit for what it sends", T, async (t) => {
    const c = await clusterFor(t, { workers: 2 });
    const small = await c.fork({ ADAPTER_OPTS: JSON.stringify({ maxFrameSize: 16 * 1024 }) });
    await c.waitForServerCount(3);
    const client = await c.connect(small);
    const got = nextEvent(client, "big", 5000);
    await c.exec(0, ({ io }) => io.emit("big", "x".repeat(64 * 1024)));
    const [payload] = await got;
    assert.equal(payload.length, 64 * 1024);
    const sent = await c.exec(small, ({ io }) => {
      try {
        io.emit("big", "y".repeat(32 * 1024));
        return "sent";
      } catch (err) {
        return err.code;
      }
    });
    assert.equal(sent, "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE");
    await assertConnected(c, 3, client, 1);
  });
});

describe("maxFrameSize of the hub", () => {
  it("below the workers' own: a larger emit throws a RangeError naming setupPrimary(), and the worker stays connected", T, async (t) => {
    const c = await clusterFor(t, { workers: 2, primaryOpts: { maxFrameSize: 32 * 1024 } });
    const client = await c.connect(1);
    const r = await c.exec(0, ({ io }) => {
      try {
        io.emit("big", "x".repeat(48 * 1024));
        return "sent";
      } catch (err) {
        return { name: err.name, code: err.code, message: err.message };
      }
    });
    assert.equal(r.name, "RangeError", JSON.stringify(r));
    assert.equal(r.code, "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE");
    assert.match(r.message, /the hub's maxFrameSize \(32768 bytes\).*setupPrimary\(\)/);
    // Under the hub's limit everything goes through, on a connection that is still up.
    await c.waitForServerCount(2);
    const got = nextEvent(client, "fits", 3000);
    await c.exec(0, ({ io }) => io.emit("fits", "y".repeat(16 * 1024)));
    const [payload] = await got;
    assert.equal(payload.length, 16 * 1024);
  });

  it("a larger message sent before the worker's handshake is left out and counted, and the worker stays connected", T, async (t) => {
    const c = await clusterFor(t, { workers: 2, primaryOpts: { maxFrameSize: 32 * 1024 } });
    // The primary (and its hub thread) is stopped while the new worker
    // starts: its connection is accepted by the kernel, but the hub's answer
    // waits, so its first emit happens before it learns the hub's limit.
    const early = await c._request({ cmd: "harness:fork", env: { EMIT_AT_START: String(48 * 1024) } }, 5000, "fork");
    process.kill(c.child.pid, "SIGSTOP");
    try {
      await sleep(1500);
    } finally {
      process.kill(c.child.pid, "SIGCONT");
    }
    await waitFor(() => c.workers[early] && c.workers[early].port, 10_000, "the new worker to listen");
    await c.waitForServerCount(3);
    const r = await c.exec(early, ({ io, state }) => ({ stats: io.of("/").adapter.stats(), error: state.earlyEmitError }));
    assert.equal(r.error, null, "the emit itself did not throw: the hub's limit was not known yet");
    assert.equal(r.stats.connected, true);
    assert.equal(r.stats.droppedTooLarge, 1);
    await assertConnected(c, 3, await c.connect(early), 0);
  });
});

describe("a worker too slow to read", () => {
  it("the hub's queue for it stays bounded; every dropped message is counted and reported", T, async (t) => {
    const MSGS = 2000;
    const SIZE = 10 * 1024; // 20 MiB in all, against a 1 MiB hard limit
    const c = await clusterFor(t, { primaryOpts: { queueSoftLimit: 256 * 1024, queueHardLimit: 1024 * 1024 } });
    const clients = await c.connectAll();
    const received = [0, 0, 0];
    clients.forEach((s, i) => s.on("flood", () => received[i]++));
    const primaryPid = c.child.pid;
    const stoppedPid = c.workers[2].pid;
    const rssBefore = rssKiB(primaryPid);
    process.kill(stoppedPid, "SIGSTOP");
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssKiB(primaryPid))), 20);
    try {
      await c.exec(
        0,
        async ({ io }, a) => {
          const payload = "f".repeat(a.SIZE);
          for (let i = 0; i < a.MSGS; i += 50) {
            for (let j = i; j < i + 50; j++) io.emit("flood", j, payload);
            await new Promise((r) => setImmediate(r));
          }
        },
        { MSGS, SIZE },
        { timeout: 20_000 },
      );
      // Worker 1 runs, but under the same small limits it may fall behind
      // too: everything must be delivered or counted as dropped.
      await waitFor(
        async () => {
          const s = await c.exec(1, ({ io }) => io.of("/").adapter.stats());
          return received[1] + s.droppedOverflow + s.droppedVolatile === MSGS;
        },
        10_000,
        "worker 1: every message of the flood delivered or counted as dropped",
      );
      await sleep(300);
      rssPeak = Math.max(rssPeak, rssKiB(primaryPid));
    } finally {
      clearInterval(sampler);
      process.kill(stoppedPid, "SIGCONT");
    }
    const growthMiB = (rssPeak - rssBefore) / 1024;
    assert.ok(growthMiB < 12, `primary RSS grew by ${growthMiB.toFixed(1)} MiB while 20 MiB were sent to a stopped worker`);

    // Worker 2 catches up, and hears how much it missed.
    const stats = await waitFor(
      async () => {
        const s = await c.exec(2, ({ io }) => io.of("/").adapter.stats());
        return s.droppedOverflow + s.droppedVolatile > 0 && s;
      },
      10_000,
      "worker 2 to be told about its drops",
    );
    let last = -1;
    await waitFor(
      async () => {
        const same = received[2] === last;
        last = received[2];
        await sleep(200);
        return same;
      },
      10_000,
      "worker 2's client to stop receiving",
    );
    assert.equal(received[2] + stats.droppedOverflow + stats.droppedVolatile, MSGS, `received ${received[2]}, dropped ${JSON.stringify(stats)}`);
    assert.ok(stats.droppedOverflow > 0);
    const hub = await c.primaryExec(({ primaryHandle }, pid) => {
      const s = primaryHandle.stats();
      return s.peers.find((p) => p.pid === pid);
    }, stoppedPid);
    assert.ok(hub, "the hub still lists the stopped worker");
    assert.equal(hub.droppedOverflow, stats.droppedOverflow, JSON.stringify(hub));

    // And it is a full member again.
    const again = nextEvent(clients[2], "after", 3000);
    await c.exec(0, ({ io }) => io.emit("after", 1));
    await again;
    await c.waitForServerCount(3);
  });
});

describe("large messages", () => {
  it("broadcasts of 64 KiB, 1 MiB and 8 MiB, text and binary, reach every client of every worker intact", T, async (t) => {
    const crypto = require("node:crypto");
    const digest = (data) => crypto.createHash("sha1").update(data).digest("hex");
    const c = await clusterFor(t);
    const clients = await c.connectAll();
    const got = clients.map(() => []);
    clients.forEach((s, i) => s.on("big", (n, data) => got[i].push([n, typeof data === "string" ? "text" : "binary", digest(data)])));
    const sizes = [64 * 1024, 1024 * 1024, 8 * 1024 * 1024];
    // The same bytes, built the same way here and in the worker.
    const make = (size, n) => {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) b.write(`${n}:${i};`, i, "latin1");
      return b;
    };
    const expected = [];
    sizes.forEach((size, k) => {
      expected.push([2 * k, "text", digest(make(size, 2 * k).toString("latin1"))]);
      expected.push([2 * k + 1, "binary", digest(make(size, 2 * k + 1))]);
    });
    const rssBefore = rssKiB(c.child.pid);
    await c.exec(
      0,
      ({ io }, { sizes, make }) => {
        const build = new Function(`return ${make}`)();
        sizes.forEach((size, k) => {
          io.emit("big", 2 * k, build(size, 2 * k).toString("latin1"));
          io.emit("big", 2 * k + 1, build(size, 2 * k + 1));
        });
      },
      { sizes, make: make.toString() },
      { timeout: 20_000 },
    );
    await waitFor(() => got.every((g) => g.length === expected.length), 20_000, "every client to get every message");
    got.forEach((g, i) => assert.deepEqual(g, expected, `client of worker ${i}`));
    const growthMiB = (rssKiB(c.child.pid) - rssBefore) / 1024;
    const forwardedMiB = (2 * (clients.length - 1) * sizes.reduce((a, b) => a + b)) / 2 ** 20;
    t.diagnostic(`primary RSS grew by ${growthMiB.toFixed(1)} MiB after forwarding ${forwardedMiB.toFixed(1)} MiB`);
  });
});
