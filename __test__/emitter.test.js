"use strict";
// The emitter: Socket.IO operations from the primary (setupPrimary().emitter)
// and from another process (createEmitter({ primaryPid })), checked on a real
// two-worker cluster with a real client on each worker.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { startCluster, nextEvent, record, sleep, waitFor } = require("./helpers/cluster");

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
        try { result = { ok: await (${body})(emitter) }; } finally { await emitter.close(); }
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
    const rooms = () => c.execAll(({ io }) => [...io.of("/").sockets.values()].map((s) => [...s.rooms].filter((r) => r !== s.id).sort()));
    const expected = JSON.stringify([[["green", "red"]], [["green", "red"]]]);
    await waitFor(async () => JSON.stringify(await rooms()) === expected, 5000, "rooms green and red on both workers");
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

  it("every other method from another process: targets, flags, rooms, acks, server-side emits, disconnect", T, async () => {
    await c.execAll(({ io, notify }) => {
      io.removeAllListeners("ping-servers");
      io.on("ping-servers", (n, ack) => (typeof ack === "function" ? ack(n + 1) : notify("ping-servers", n)));
    });
    clients.forEach((s) => s.removeAllListeners("ask").on("ask", (n, ack) => ack(n * 2)));
    const onlyOne = record(clients, "only-1");
    const vol = clients.map((s) => nextEvent(s, "vol"));
    const result = await inOtherProcess({ primaryPid: c.child.pid }, `async (e) => {
      e.except(${JSON.stringify(clients[0].id)}).compress(false).emit("only-1", "x");
      await new Promise((r) => setTimeout(r, 200));
      e.volatile.emit("vol", 1);
      e.serverSideEmit("ping-servers", 1);
      const viaAck = await e.serverSideEmitWithAck("ping-servers", 2);
      const viaCb = await new Promise((r) => e.serverSideEmit("ping-servers", 3, (err, res) => r([err && err.message, res])));
      const acks = await e.timeout(2000).emitWithAck("ask", 21);
      e.socketsJoin("from-cron");
      const joined = (await e.in("from-cron").fetchSockets()).length;
      e.in("from-cron").socketsLeave("from-cron");
      const left = (await e.in("from-cron").fetchSockets()).length;
      return { viaAck: viaAck.sort(), viaCb: [viaCb[0], viaCb[1].sort()], acks, joined, left };
    }`);
    assert.deepEqual(result.ok, { viaAck: [3, 3], viaCb: [null, [4, 4]], acks: [42, 42], joined: 2, left: 0 });
    assert.deepEqual(await Promise.all(vol), [[1], [1]]);
    assert.deepEqual(await Promise.all([c.workerEvent(0, "ping-servers"), c.workerEvent(1, "ping-servers")]), [1, 1]);
    assert.deepEqual(onlyOne.calls, [[], [["x"]]]);
  });

  it("a short-lived process that emits and awaits close() at once loses nothing", T, async () => {
    const got = clients.map((s) => nextEvent(s, "one-shot"));
    const r = await inOtherProcess({ primaryPid: c.child.pid }, `async (emitter) => { emitter.emit("one-shot", 42); return true; }`);
    assert.equal(r.ok, true);
    assert.deepEqual(await Promise.all(got), [[42], [42]]);
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

  it("disconnectSockets() from the primary and from another process, the last operations of this cluster", T, async () => {
    const gone = clients.map((s) => nextEvent(s, "disconnect"));
    await c.primaryExec(({ primaryHandle }, id) => primaryHandle.emitter.in(id).disconnectSockets(), clients[1].id);
    assert.equal((await gone[1])[0], "io server disconnect");
    const r = await inOtherProcess({ primaryPid: c.child.pid }, `async (e) => e.disconnectSockets(true)`);
    assert.equal(r.ok, true);
    assert.equal((await gone[0])[0], "io server disconnect");
    assert.deepEqual(await c.execAll(({ io }) => io.of("/").sockets.size), [0, 0]);
  });
});

describe("cluster-wide room queries: allRooms() and roomSize()", () => {
  let c;
  const sockets = []; // [worker index, client]

  before(async () => {
    c = await startCluster({ workers: 3 });
    for (const w of [0, 0, 1, 1, 2]) sockets.push([w, await c.connect(w)]);
  });
  after(() => c && c.close());

  /** Joins, in its worker, the socket of client `s` to `rooms`. */
  const join = ([w, s], rooms) => c.exec(w, ({ io }, a) => io.in(a.id).socketsJoin(a.rooms), { id: s.id, rooms });
  const leave = ([w, s], room) => c.exec(w, ({ io }, a) => io.in(a.id).socketsLeave(a.room), { id: s.id, room });

  /** What every asker says: the primary's emitter, then each live worker's adapter. */
  async function answers(room) {
    const fromPrimary = await c.primaryExec(
      async ({ primaryHandle }, r) => ({ rooms: [...(await primaryHandle.emitter.allRooms())].sort(), size: await primaryHandle.emitter.roomSize(r) }),
      room,
    );
    const fromWorkers = await c.execAll(
      async ({ io }, r) => ({ rooms: [...(await io.of("/").adapter.allRooms())].sort(), size: await io.of("/").adapter.roomSize(r) }),
      room,
    );
    return [fromPrimary, ...fromWorkers];
  }

  it("match the truth after joins and leaves on several workers", T, async () => {
    await join(sockets[0], ["a", "b"]);
    await join(sockets[1], ["a"]);
    await join(sockets[2], ["a", "c"]);
    await join(sockets[4], ["b"]);
    for (const a of await answers("a")) assert.deepEqual(a, { rooms: ["a", "b", "c"], size: 3 });
    await leave(sockets[2], "c");
    await leave(sockets[0], "a");
    for (const a of await answers("a")) assert.deepEqual(a, { rooms: ["a", "b"], size: 2 });
    for (const a of await answers("nowhere")) assert.equal(a.size, 0);
  });

  it("leave out a SIGKILLed worker's sockets at once", T, async () => {
    await join(sockets[2], ["c"]);
    await c.kill(1);
    // Worker 1 held sockets 2 and 3: room "c" only had socket 2; "a" keeps socket 1.
    for (const a of await answers("a")) assert.deepEqual(a, { rooms: ["a", "b"], size: 1 });
  });

  it("from another process too", T, async () => {
    const r = await inOtherProcess({ primaryPid: c.child.pid }, `async (e) => ({ rooms: [...await e.allRooms()].sort(), b: await e.roomSize("b") })`);
    assert.deepEqual(r.ok, { rooms: ["a", "b"], b: 2 });
  });
});

describe("an emitter whose hub goes away", () => {
  it("fails fast with a clear error, never crashes the calling process", T, async () => {
    const primary = spawn(process.execPath, ["-e", `require(${JSON.stringify(ROOT)}).setupPrimary(); console.log("up"); setTimeout(() => {}, 20000)`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await new Promise((r) => primary.stdout.once("data", r));
      const { createEmitter } = require(ROOT);
      const emitter = createEmitter({ primaryPid: primary.pid });
      assert.equal(await emitter.serverCount(), 0, "no worker serves anything yet");
      assert.deepEqual(await emitter.fetchSockets(), []);
      primary.kill("SIGKILL");
      await new Promise((r) => primary.once("exit", r));
      await waitFor(() => {
        try {
          emitter.emit("x", 1);
          return false;
        } catch (err) {
          return /hub is unreachable/.test(err.message);
        }
      }, 5000, "emit() to fail with the hub gone");
      await assert.rejects(emitter.fetchSockets(), /hub is unreachable/);
      await emitter.close();
    } finally {
      primary.kill("SIGKILL");
    }
  });
});

describe("an emitter with the workers' custom parser", () => {
  it("encodes packets the way the workers' clients decode them", T, async () => {
    const PARSER = path.join(__dirname, "fixtures", "parser", "binary.js");
    const c = await startCluster({ workers: 2, serverOpts: { parserModule: PARSER } });
    try {
      const parser = require(PARSER);
      const clients = [await c.connect(0, { parser }), await c.connect(1, { parser })];
      const got = clients.map((s) => nextEvent(s, "custom"));
      await c.primaryExec(({ primaryHandle, adapterModule, require }, file) => {
        const emitter = adapterModule.createEmitter({ hubPath: primaryHandle.path, parser: require(file) });
        emitter.emit("custom", { n: 5 });
        return emitter.close();
      }, PARSER);
      assert.deepEqual(await Promise.all(got), [[{ n: 5 }], [{ n: 5 }]]);
    } finally {
      await c.close();
    }
  });
});
