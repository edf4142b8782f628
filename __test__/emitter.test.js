"use strict";
// The emitter: Socket.IO operations from the primary (setupPrimary().emitter)
// and from another process (createEmitter({ primaryPid })), checked on a real
// two-worker cluster with a real client on each worker.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { startCluster, nextEvent, record, sleep } = require("./helpers/cluster");

const ROOT = path.join(__dirname, "..");
const T = { timeout: 30_000 };

/**
 * Runs `body` (source of an async function taking the emitter) in a new Node
 * process that made its emitter with createEmitter(`opts`); resolves with
 * what it returned, or rejects with what it threw.
 */
function inOtherProcess(opts, body) {
  const script = `
    const { createEmitter } = require(${JSON.stringify(ROOT)});
    (async () => {
      let result;
      try {
        const emitter = createEmitter(${JSON.stringify(opts)});
        try { result = { ok: await (${body})(emitter) }; } finally { emitter.close(); }
      } catch (err) {
        result = { error: { message: err.message, code: err.code, name: err.name } };
      }
      process.stdout.write(JSON.stringify(result));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code, signal) => {
      if (code !== 0) return reject(new Error(`emitter process exited with ${code ?? signal}: ${err}`));
      resolve(JSON.parse(out));
    });
  });
}

describe("emitting from the primary and from another process", () => {
  let c;
  let clients;

  before(async () => {
    c = await startCluster({ workers: 2 });
    clients = await c.connectAll();
  });
  after(() => c && c.close());

  it("the primary's emitter reaches every client on every worker, binary intact", T, async () => {
    const got = clients.map((s) => nextEvent(s, "news"));
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("news", "hello", Buffer.from([1, 2, 255])));
    for (const [text, bytes] of await Promise.all(got)) {
      assert.equal(text, "hello");
      assert.deepEqual([...Buffer.from(bytes)], [1, 2, 255]);
    }
  });

  it("to(), except() and volatile are honoured", T, async () => {
    await c.exec(0, ({ io }, id) => io.in(id).socketsJoin("red"), clients[0].id);
    await c.exec(1, ({ io }, id) => io.in(id).socketsJoin("red"), clients[1].id);
    const seen = record(clients, "to-red");
    const heard = nextEvent(clients[1], "to-red");
    await c.primaryExec(({ primaryHandle }, id) => primaryHandle.emitter.to("red").except(id).emit("to-red", 1), clients[0].id);
    await heard;
    await sleep(100);
    // Alone on an idle connection (Engine.IO drops a volatile packet while
    // the transport is busy writing, as for any Socket.IO volatile emit).
    const both = clients.map((s) => nextEvent(s, "volatile-red"));
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.to("red").volatile.emit("volatile-red", 2));
    assert.deepEqual(await Promise.all(both), [[2], [2]]);
    assert.deepEqual(seen.calls, [[], [[1]]]);
  });

  it("socketsJoin(), socketsLeave() and disconnectSockets() act on every worker", T, async () => {
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.socketsJoin(["blue", "green"]));
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.in("green").socketsLeave("blue"));
    await sleep(100);
    const rooms = await c.execAll(({ io }) => [...io.of("/").sockets.values()].map((s) => [...s.rooms].filter((r) => r !== s.id).sort()));
    assert.deepEqual(rooms, [[["green", "red"]], [["green", "red"]]]);
  });

  it("fetchSockets() returns every worker's sockets as plain descriptions", T, async () => {
    const sockets = await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.in("red").fetchSockets());
    assert.deepEqual(sockets.map((s) => s.id).sort(), clients.map((s) => s.id).sort());
    for (const s of sockets) {
      assert.ok(s.rooms.includes("red"));
      assert.equal(typeof s.handshake.address, "string");
    }
    assert.deepEqual(await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.in("nobody").fetchSockets()), []);
  });

  it("timeout(ms).emitWithAck() collects every client's acknowledgement, or rejects", T, async () => {
    clients.forEach((s, i) => s.on("question", (n, ack) => ack(n * 10 + i)));
    const answers = await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.timeout(2000).emitWithAck("question", 4));
    assert.deepEqual(answers.sort(), [40, 41]);
    clients[1].off("question");
    clients[1].on("question", () => {}); // never acknowledges
    const outcome = await c.primaryExec(({ primaryHandle }) =>
      primaryHandle.emitter
        .timeout(300)
        .emitWithAck("question", 1)
        .then(() => "resolved", (err) => err.message),
    );
    assert.equal(outcome, "operation has timed out");
  });

  it("serverSideEmit() and serverSideEmitWithAck() reach every worker's listeners", T, async () => {
    await c.execAll(({ io, notify, index }) => {
      io.on("tick", (n, ack) => (typeof ack === "function" ? ack(`w${index}:${n}`) : notify("tick", n)));
    });
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.serverSideEmit("tick", 7));
    assert.deepEqual(await Promise.all([c.workerEvent(0, "tick"), c.workerEvent(1, "tick")]), [7, 7]);
    const answers = await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.serverSideEmitWithAck("tick", 8));
    assert.deepEqual(answers.sort(), ["w0:8", "w1:8"]);
  });

  it("the emitter is not a server: serverCount() is the number of workers everywhere", T, async () => {
    assert.equal(await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.serverCount()), 2);
    assert.deepEqual(await c.execAll(({ io }) => io.of("/").adapter.serverCount()), [2, 2]);
  });

  it("bad input is a clear error in the caller, and the cluster goes on", T, async () => {
    const errors = await c.primaryExec(({ primaryHandle }) => {
      const e = primaryHandle.emitter;
      const circular = {};
      circular.self = circular;
      const attempt = (fn) => {
        try {
          fn();
          return "no error";
        } catch (err) {
          return err.message;
        }
      };
      return [
        attempt(() => e.emit("disconnect")),
        attempt(() => e.emit("x", circular)),
        attempt(() => e.emit("x", () => {})),
        attempt(() => e.emit(42)),
        attempt(() => e.of("/nobody-serves-this").emit("x", 1)),
      ];
    });
    assert.match(errors[0], /reserved event name/);
    assert.match(errors[1], /cannot encode the arguments of "x"/);
    assert.match(errors[2], /emitWithAck/);
    assert.match(errors[3], /event name must be a string/);
    assert.equal(errors[4], "no error", "a namespace no worker serves: a no-op");
    const got = clients.map((s) => nextEvent(s, "still"));
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("still", "alive"));
    assert.deepEqual(await Promise.all(got), [["alive"], ["alive"]]);
  });

  it("createEmitter({ primaryPid }) in another process: emit, fetchSockets(), serverCount()", T, async () => {
    const got = clients.map((s) => nextEvent(s, "from-cron"));
    const result = await inOtherProcess({ primaryPid: c.child.pid }, `async (emitter) => {
      emitter.to("red").emit("from-cron", { n: 1 }, Buffer.from("ab"));
      const sockets = await emitter.fetchSockets();
      return { ids: sockets.map((s) => s.id).sort(), count: await emitter.serverCount() };
    }`);
    assert.deepEqual(result.ok, { ids: clients.map((s) => s.id).sort(), count: 2 });
    for (const [obj, bytes] of await Promise.all(got)) {
      assert.deepEqual(obj, { n: 1 });
      assert.equal(Buffer.from(bytes).toString(), "ab");
    }
    // The emitter process left: the workers still count each other only.
    assert.deepEqual(await c.execAll(({ io }) => io.of("/").adapter.serverCount()), [2, 2]);
  });

  it("createEmitter() without a reachable hub fails with an error naming the option", T, async () => {
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.on("exit", r));
    const r = await inOtherProcess({ primaryPid: dead.pid }, "async () => 1");
    assert.equal(r.error.code, "ERR_SOCKET_IO_CLUSTER_NO_HUB");
    assert.match(r.error.message, new RegExp(`primaryPid ${dead.pid}`));
    const none = await inOtherProcess({}, "async () => 1");
    assert.match(none.error.message, /primaryPid .*or hubPath/);
  });

  it("a closed emitter throws; the primary's handle makes a new one", T, async () => {
    const outcome = await c.primaryExec(({ primaryHandle }) => {
      const e = primaryHandle.emitter;
      e.close();
      let message = "no error";
      try {
        e.emit("x");
      } catch (err) {
        message = err.message;
      }
      return message;
    });
    assert.match(outcome, /emitter was closed/);
    const got = clients.map((s) => nextEvent(s, "again"));
    await c.primaryExec(({ primaryHandle }) => primaryHandle.emitter.emit("again", 1));
    assert.deepEqual(await Promise.all(got), [[1], [1]]);
  });
});
