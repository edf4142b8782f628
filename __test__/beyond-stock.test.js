"use strict";
// What socket.io-cluster-rs promises beyond (or instead of) the stock
// @socket.io/cluster-adapter 0.3.0: validated options, `requestsTimeout`,
// io.local acks that do not time out, one IPC listener whatever the number
// of namespaces, the tutorial's start order, binary fidelity with the default
// json serialization, the native transport. Tests of behaviour the stock
// package does not have are skipped (with the reason) under
// ADAPTER_MODULE=@socket.io/cluster-adapter; against our package nothing skips.

const { describe, it, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, sleep, nextEvent, record } = require("./helpers/cluster");
const { modulePath, oursOnly } = require("./helpers/adapter-module");

const T = { timeout: 15_000 };
const QUIET_MS = 150;

let current = null;
/** One cluster per test, always stopped afterwards. */
async function cluster(options) {
  current = await startCluster({ workers: 3, ...options });
  return current;
}
afterEach(async () => {
  if (current) await current.close();
  current = null;
});

describe("createAdapter() options", () => {
  const { createAdapter } = require(modulePath);
  const OPTIONS = ["heartbeatInterval", "heartbeatTimeout", "requestsTimeout"];

  it(
    "negative, NaN and string values throw a TypeError from createAdapter() itself",
    { skip: oursOnly("no option validation (any value is accepted)") },
    () => {
      for (const key of OPTIONS) {
        for (const value of [-1, -5000, NaN, "1000", "abc"]) {
          assert.throws(
            () => createAdapter({ [key]: value }),
            TypeError,
            `createAdapter({ ${key}: ${JSON.stringify(value) ?? String(value)} }) must throw a TypeError`,
          );
        }
      }
    },
  );

  it("positive numbers, undefined and no options at all are accepted", () => {
    for (const opts of [
      undefined,
      {},
      { heartbeatInterval: 1000, heartbeatTimeout: 3000, requestsTimeout: 300 },
      { heartbeatInterval: undefined, heartbeatTimeout: undefined, requestsTimeout: undefined },
    ]) {
      const factory = createAdapter(opts);
      assert.equal(typeof factory, "function");
      assert.equal(factory.length, 1);
    }
  });

  it("undefined options mean the defaults: the cluster works normally", T, async () => {
    const c = await cluster({
      adapterOpts: { heartbeatInterval: undefined, heartbeatTimeout: undefined, requestsTimeout: undefined },
    });
    const clients = await c.connectAll();
    const got = Promise.all(clients.map((s) => nextEvent(s, "test")));
    await c.exec(0, ({ io }) => void io.emit("test", 1));
    assert.deepEqual(await got, [[1], [1], [1]]);
    assert.equal(await c.exec(1, async ({ io }) => (await io.fetchSockets()).length), 3);
  });

  it("short heartbeats: a worker whose event loop is blocked is dropped, then counted again", T, async () => {
    const c = await cluster({ adapterOpts: { heartbeatInterval: 100, heartbeatTimeout: 400 } });
    const busy = c.exec(
      2,
      () => {
        const end = Date.now() + 2500;
        while (Date.now() < end);
      },
      null,
      { timeout: 8000 },
    );
    await sleep(50);
    await c.waitForServerCount(2, { workers: [0, 1], timeout: 2400 });
    await busy;
    await c.waitForServerCount(3, { timeout: 3000 });
  });
});

describe("requestsTimeout", () => {
  it(
    "bounds serverSideEmit() with an ack: timeout error with the partial responses",
    { ...T, skip: oursOnly("requestsTimeout was removed in 0.3.0, serverSideEmit always waits 5 s") },
    async () => {
      const c = await cluster({ adapterOpts: { requestsTimeout: 300 } });
      await c.exec(1, ({ io }) => void io.on("hello", (cb) => cb("w1")));
      await c.exec(2, ({ io }) => void io.on("hello", () => {})); // never answers
      const res = await c.exec(0, ({ io }) =>
        new Promise((resolve) => {
          const t0 = Date.now();
          io.serverSideEmit("hello", (err, responses) => resolve({ err, responses, ms: Date.now() - t0 }));
        }),
      );
      assert.ok(res.err instanceof Error);
      assert.equal(res.err.message, "timeout reached: missing 1 responses");
      assert.deepEqual(res.responses, ["w1"]);
      assert.ok(res.ms >= 250 && res.ms < 1500, `answered after ${res.ms} ms, expected ~300`);
    },
  );

  it(
    "is the default timeout of fetchSockets()",
    { ...T, skip: oursOnly("requestsTimeout was removed in 0.3.0, fetchSockets waits 5 s") },
    async () => {
      const c = await cluster({ adapterOpts: { requestsTimeout: 300 } });
      const busy = c.exec(2, () => {
        const end = Date.now() + 1500;
        while (Date.now() < end);
      });
      await sleep(100);
      const res = await c.exec(0, async ({ io }) => {
        const t0 = Date.now();
        try {
          return { ok: true, n: (await io.fetchSockets()).length, ms: Date.now() - t0 };
        } catch (err) {
          return { ok: false, message: err.message, ms: Date.now() - t0 };
        }
      });
      await busy;
      assert.deepEqual({ ok: res.ok, message: res.message }, { ok: false, message: "timeout reached: missing 1 responses" });
      assert.ok(res.ms >= 250 && res.ms < 1400, `rejected after ${res.ms} ms, expected ~300`);
    },
  );
});

describe("io.local with acknowledgements", () => {
  it(
    "io.local.timeout().emit() only waits for the local clients",
    { ...T, skip: oursOnly('counts every server for a local emit, so the callback always gets "operation has timed out"') },
    async () => {
      const c = await cluster();
      const clients = await c.connectAll();
      const rec = record(clients, "x");
      clients[0].on("x", (cb) => cb("ok0"));
      const res = await c.exec(0, ({ io }) =>
        new Promise((resolve) => {
          const t0 = Date.now();
          io.local.timeout(500).emit("x", (err, responses) => resolve({ err, responses, ms: Date.now() - t0 }));
        }),
      );
      assert.equal(res.err, null);
      assert.deepEqual(res.responses, ["ok0"]);
      assert.ok(res.ms < 450, `answered after ${res.ms} ms: it waited for the timeout`);
      await sleep(QUIET_MS);
      assert.equal(rec.calls[1].length + rec.calls[2].length, 0, "io.local must not reach other workers");
    },
  );
});

describe("many namespaces", () => {
  it(
    "25 namespaces: no MaxListenersExceededWarning and no process 'message' listener per namespace",
    { ...T, skip: oursOnly("one process 'message' listener per namespace: MaxListenersExceededWarning past 10") },
    async () => {
      const c = await cluster({ workers: 2 });
      const res = await c.exec(0, async ({ io, warnings, sleep }) => {
        const before = process.listenerCount("message");
        for (let i = 0; i < 25; i++) io.of(`/ns-${i}`);
        await sleep(50); // warnings are emitted on a later tick
        return { before, after: process.listenerCount("message"), warnings };
      });
      assert.equal(res.after, res.before, "process.listenerCount('message') grew with the namespaces");
      assert.deepEqual(
        res.warnings.filter((w) => w.name === "MaxListenersExceededWarning"),
        [],
      );
      // And they all work.
      await c.exec(1, ({ io }) => {
        for (let i = 0; i < 25; i++) io.of(`/ns-${i}`);
      });
      await c.waitForServerCount(2, { nsp: "/ns-0" });
      await c.waitForServerCount(2, { nsp: "/ns-24" });
      const client = await c.connect(1, { nsp: "/ns-24" });
      const got = nextEvent(client, "test");
      await c.exec(0, ({ io }) => void io.of("/ns-24").emit("test", 24));
      assert.deepEqual(await got, [24]);
    },
  );

  it(
    "closing a namespace's adapter removes it from the other workers' node list",
    T,
    async () => {
      const c = await cluster({ workers: 2 });
      await c.execAll(({ io }) => void io.of("/temp"));
      await c.waitForServerCount(2, { nsp: "/temp" });
      await c.exec(1, ({ io }) => void io.of("/temp").adapter.close());
      await c.waitForServerCount(1, { nsp: "/temp", workers: [0], timeout: 3000 });
      assert.equal(await c.exec(0, ({ io }) => io.of("/").adapter.serverCount()), 2);
    },
  );
});

describe("tutorial start order (cluster.fork() before setupPrimary())", () => {
  it("broadcasts, fetchSockets and serverSideEmit work", T, async () => {
    const c = await cluster({ forkBeforeSetup: true });
    const clients = await c.connectAll();
    const got = Promise.all(clients.map((s) => nextEvent(s, "test")));
    await c.exec(1, ({ io }) => void io.emit("test", "tutorial"));
    assert.deepEqual(await got, [["tutorial"], ["tutorial"], ["tutorial"]]);
    const ids = await c.exec(2, async ({ io }) => (await io.fetchSockets()).map((s) => s.id));
    assert.deepEqual(new Set(ids), new Set(clients.map((s) => s.id)));
    await c.execAll(({ io, index }) => void io.on("who", (cb) => cb(index)));
    const responses = await c.exec(0, ({ io }) => io.serverSideEmitWithAck("who"));
    assert.deepEqual([...responses].sort(), [1, 2]);
  });

  it(
    "the workers still use the native transport",
    { ...T, skip: oursOnly("has no adapter.transport (IPC only)") },
    async () => {
      const c = await cluster({ forkBeforeSetup: true });
      assert.deepEqual(await c.execAll(({ io }) => io.of("/").adapter.transport), ["native", "native", "native"]);
    },
  );
});

describe("transport", () => {
  it(
    'adapter.transport is "native" under our setupPrimary(), in every namespace',
    { ...T, skip: oursOnly("has no adapter.transport (IPC only)") },
    async () => {
      const c = await cluster();
      assert.deepEqual(
        c.workers.map((w) => w.transport),
        ["native", "native", "native"],
        "transport of / at start-up",
      );
      const later = await c.execAll(({ io }) => io.of("/later").adapter.transport);
      assert.deepEqual(later, ["native", "native", "native"]);
    },
  );
});

describe("binary payloads", () => {
  it(
    "Buffers reach remote clients as binary with the default (json) cluster serialization",
    { ...T, skip: oursOnly('needs serialization: "advanced"; with json, remote clients get {type:"Buffer",data:[…]}') },
    async () => {
      const c = await cluster({ serialization: "json" });
      const mode = await c.primaryExec(({ cluster }) => cluster.settings.serialization ?? "json");
      assert.equal(mode, "json");
      const clients = await c.connectAll();
      const got = Promise.all(clients.map((s) => nextEvent(s, "bin")));
      await c.exec(0, ({ io }) =>
        void io.emit("bin", Buffer.from([1, 2, 3]), { nested: Buffer.from("hi") }, new Uint8Array([9, 8]), "text"),
      );
      for (const [i, [buf, obj, u8, text]] of (await got).entries()) {
        assert.ok(Buffer.isBuffer(buf), `client ${i}: first arg is ${JSON.stringify(buf)}`);
        assert.deepEqual([...buf], [1, 2, 3]);
        assert.ok(Buffer.isBuffer(obj.nested), `client ${i}: nested is ${JSON.stringify(obj.nested)}`);
        assert.equal(obj.nested.toString(), "hi");
        assert.ok(Buffer.isBuffer(u8), `client ${i}: Uint8Array arrived as ${JSON.stringify(u8)}`);
        assert.deepEqual([...u8], [9, 8]);
        assert.equal(text, "text");
      }
    },
  );

  it(
    "binary acks and RemoteSocket emits stay binary with the default (json) cluster serialization",
    { ...T, skip: oursOnly('needs serialization: "advanced" for binary acks') },
    async () => {
      const c = await cluster({ serialization: "json" });
      const clients = await c.connectAll();
      clients.forEach((s, i) => s.on("q", (cb) => cb(Buffer.from([i]))));
      const res = await c.exec(0, async ({ io }) => {
        const responses = await io.timeout(1000).emitWithAck("q");
        return { allBuffers: responses.every((r) => Buffer.isBuffer(r)), bytes: responses.map((r) => r[0]).sort() };
      });
      assert.deepEqual(res, { allBuffers: true, bytes: [0, 1, 2] });

      const got = nextEvent(clients[2], "direct");
      await c.exec(
        0,
        async ({ io }, id) => {
          const [remote] = await io.in(id).fetchSockets();
          remote.emit("direct", Buffer.from([5, 6]));
        },
        clients[2].id,
      );
      const [buf] = await got;
      assert.ok(Buffer.isBuffer(buf), `got ${JSON.stringify(buf)}`);
      assert.deepEqual([...buf], [5, 6]);
    },
  );

  it("serverSideEmit arguments and answers keep Buffers", T, async () => {
    // Default serialization of the harness: advanced for the stock package, json for ours.
    const c = await cluster({ workers: 2 });
    await c.exec(1, ({ io }) =>
      void io.on("bin", (buf, cb) => cb({ isBuffer: Buffer.isBuffer(buf), echo: Buffer.concat([buf, Buffer.from([0])]) })),
    );
    const res = await c.exec(0, async ({ io }) => {
      const [answer] = await io.serverSideEmitWithAck("bin", Buffer.from([7, 7]));
      return { isBuffer: answer.isBuffer, echoIsBuffer: Buffer.isBuffer(answer.echo), echo: [...answer.echo] };
    });
    assert.deepEqual(res, { isBuffer: true, echoIsBuffer: true, echo: [7, 7, 0] });
  });
});

describe("setupPrimary()", () => {
  it("runs in the primary and is what the harness relies on", T, async () => {
    const c = await cluster({ workers: 2 });
    const info = await c.primaryExec(({ cluster }) => ({
      isPrimary: cluster.isPrimary,
      workers: Object.keys(cluster.workers).length,
    }));
    assert.deepEqual(info, { isPrimary: true, workers: 2 });
    assert.equal(await c.exec(0, ({ io }) => io.of("/").adapter.serverCount()), 2);
  });
});
