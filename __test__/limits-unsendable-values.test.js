"use strict";
// Values the cluster cannot carry as they are (docs/failure-behaviour.md):
// class instances, functions, toJSON objects are converted the way
// Socket.IO's JSON encoding converts them; binary, Date, Map, Set and BigInt
// arrive intact in serverSideEmit arguments, acknowledgements and
// socket.data; circular data is a clear error for the caller, or null in an
// answer, and never kills a worker.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startCluster, nextEvent } = require("./helpers/cluster");

const T = { timeout: 20_000 };

// state.describe(state.odd()) after a trip to another worker.
const EXPECTED_ODD = {
  inst: '{"x":1}',
  hasFn: false,
  json: "as-json",
  date: 0,
  map: [["k", 1]],
  set: [1, 2],
  big: String(10n ** 20n),
  buf: [7, 8],
};

describe("values the cluster cannot carry as they are", () => {
  let c;
  let clients;
  before(async () => {
    c = await startCluster({ workers: 3 });
    clients = await c.connectAll();
    // Helpers in every worker: odd values, and listeners answering with them.
    await c.execAll(({ io, state }) => {
      class Point {
        constructor() {
          this.x = 1;
        }
        norm() {
          return 1;
        }
      }
      state.odd = () => ({
        inst: new Point(),
        fn() {},
        json: { toJSON: () => "as-json" },
        date: new Date(0),
        map: new Map([["k", 1]]),
        set: new Set([1, 2]),
        big: 10n ** 20n,
        buf: Buffer.from([7, 8]),
      });
      state.circular = () => {
        const o = { a: 1 };
        o.self = o;
        return o;
      };
      // What arrived, as plain data the test harness can carry (it does not
      // carry Dates), with the types checked here in the worker.
      state.describe = (v) =>
        v === null
          ? null
          : {
              inst: JSON.stringify(v.inst),
              hasFn: "fn" in v,
              json: v.json,
              date: v.date instanceof Date ? v.date.getTime() : `not a Date: ${JSON.stringify(v.date)}`,
              map: v.map instanceof Map ? [...v.map] : "not a Map",
              set: v.set instanceof Set ? [...v.set] : "not a Set",
              big: typeof v.big === "bigint" ? String(v.big) : "not a BigInt",
              buf: Buffer.isBuffer(v.buf) || v.buf instanceof Uint8Array ? [...v.buf] : "not binary",
            };
      state.got = [];
      io.on("odd", (v) => state.got.push(v));
      io.on("answer-odd", (cb) => cb(state.odd()));
      io.on("answer-circular", (cb) => cb(state.circular()));
    });
  });
  after(() => c && c.close());

  it("io.emit(): a class instance, a nested function and a toJSON object reach remote clients as JSON would render them", T, async () => {
    const remote = nextEvent(clients[1], "shape", 3000);
    const local = nextEvent(clients[0], "shape", 3000);
    await c.exec(0, ({ io }) => {
      class Point {
        constructor() {
          this.x = 1;
        }
      }
      io.emit("shape", { inst: new Point(), fn() {}, json: { toJSON: () => "as-json" }, date: new Date(0) });
    });
    const expected = { inst: { x: 1 }, json: "as-json", date: "1970-01-01T00:00:00.000Z" };
    assert.deepEqual((await remote)[0], expected);
    assert.deepEqual((await local)[0], expected);
  });

  it("io.emit() of circular data throws to the caller what Socket.IO's encoder throws without a cluster; the worker goes on", T, async () => {
    const r = await c.exec(0, ({ io, state }) => {
      const attempt = (fn) => {
        try {
          fn();
          return "no error";
        } catch (err) {
          return { name: err.name, message: err.message };
        }
      };
      return {
        cluster: attempt(() => io.emit("loop", state.circular())),
        // What Socket.IO's own encoder does with the same packet.
        plain: attempt(() => new io._parser.Encoder().encode({ type: 2, nsp: "/", data: ["loop", state.circular()] })),
      };
    });
    assert.notEqual(r.cluster, "no error");
    assert.deepEqual(r.cluster, r.plain);
    const after = clients.map((s) => nextEvent(s, "still-fine", 3000));
    await c.exec(0, ({ io }) => io.emit("still-fine"));
    await Promise.all(after);
  });

  it("serverSideEmit(): Date, Map, Set, BigInt and Buffers arrive intact; instances become their fields; functions are dropped", T, async () => {
    await c.execAll(({ state }) => (state.got = []));
    await c.exec(0, ({ io, state }) => io.serverSideEmit("odd", state.odd()));
    const got = await c.exec(1, async ({ state, waitFor }) => {
      await waitFor(() => state.got.length === 1, 3000);
      return state.describe(state.got[0]);
    });
    assert.deepEqual(got, EXPECTED_ODD);
  });

  it("serverSideEmit() of circular data throws a TypeError; with an ack the callback gets it; the worker goes on", T, async () => {
    const r = await c.exec(0, async ({ io, state }) => {
      const out = {};
      try {
        io.serverSideEmit("odd", state.circular());
        out.plain = "no error";
      } catch (err) {
        out.plain = { name: err.name, message: err.message };
      }
      try {
        await io.serverSideEmitWithAck("odd", state.circular());
        out.withAck = "no error";
      } catch (err) {
        out.withAck = { name: err.name, message: err.message };
      }
      return out;
    });
    for (const k of ["plain", "withAck"]) {
      assert.equal(r[k].name, "TypeError", `${k}: ${JSON.stringify(r[k])}`);
      assert.match(r[k].message, /circular/);
    }
    assert.deepEqual(c.live(), [0, 1, 2]);
  });

  it("acknowledgements: odd values arrive converted, a circular one arrives as null, and the request completes", T, async () => {
    const r = await c.exec(0, async ({ io, state }) => {
      const odd = await io.serverSideEmitWithAck("answer-odd");
      const circular = await io.serverSideEmitWithAck("answer-circular");
      return { odd: odd.map(state.describe), circular };
    });
    assert.deepEqual(r.odd, [EXPECTED_ODD, EXPECTED_ODD]);
    assert.deepEqual(r.circular, [null, null]);
  });

  it("fetchSockets(): socket.data with odd values arrives converted; in circular socket.data only the field that closes the circle arrives as null", T, async () => {
    await c.exec(1, ({ socketOf, state }, id) => (socketOf(id).data = state.odd()), clients[1].id);
    await c.exec(2, ({ socketOf, state }, id) => (socketOf(id).data = state.circular()), clients[2].id);
    const byId = await c.exec(0, async ({ io, state }) => {
      const out = {};
      for (const s of await io.fetchSockets()) out[s.id] = s.data && (s.data.self === undefined ? state.describe(s.data) : s.data);
      return out;
    });
    assert.deepEqual(byId[clients[1].id], EXPECTED_ODD);
    assert.deepEqual(byId[clients[2].id], { a: 1, self: null });
    assert.deepEqual(c.live(), [0, 1, 2], "no worker died");
  });
});
