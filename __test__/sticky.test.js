"use strict";
// Sticky balancing on one port (setupPrimary({ sticky }), docs/sticky.md),
// with real clusters and real socket.io-client connections. The same client
// scenarios run against @socket.io/sticky for comparison: there, sessions must
// end up served and correct, and the connection errors clients met on the way
// (which ours must not produce at all) are reported as diagnostics.

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const net = require("node:net");
const { execFile } = require("node:child_process");
const path = require("node:path");
const { io: connect } = require("socket.io-client");
const { startStickyCluster, httpRequest, sidOwner } = require("./helpers/sticky-cluster");

const ROOT = path.join(__dirname, "..");

/** Connects a client and waits for "connect"; every client is closed by `clients.closeAll()`. */
function clientPool() {
  const all = new Set();
  return {
    connect(url, opts = {}) {
      const s = connect(url, { reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0, ...opts });
      all.add(s);
      s.errors = [];
      s.on("connect_error", (e) => s.errors.push(e.message));
      return s;
    },
    closeAll() {
      for (const s of all) s.close();
      all.clear();
    },
  };
}

function connected(s, ms = 10_000) {
  if (s.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`not connected in ${ms} ms: ${s.errors.join("; ")}`)), ms);
    s.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function upgraded(s, ms = 10_000) {
  if (s.io.engine.transport.name === "websocket") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no upgrade")), ms);
    s.io.engine.once("upgrade", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn(i)` for i < n with at most `width` at a time. */
async function pool(n, width, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

for (const balancer of ["rs", "stock"]) {
  const name = balancer === "rs" ? "setupPrimary({ sticky })" : "@socket.io/sticky";
  describe(`one port for the cluster: ${name}`, { timeout: 120_000 }, () => {
    let c;
    const clients = clientPool();
    before(async () => {
      c = await startStickyCluster({ balancer, workers: 2 });
    });
    after(async () => {
      clients.closeAll();
      if (c) await c.stop();
    });

    /** Ours: no client met an error on its way. The reference: reported. */
    function expectNoErrors(t, sockets) {
      const errors = sockets.flatMap((s) => s.errors);
      if (balancer === "rs") assert.deepEqual(errors, []);
      else t.diagnostic(`${name}: ${errors.length} connection error(s) on the way: ${[...new Set(errors)].join(", ")}`);
    }

    /** Ours: a burst of new clients spreads over both workers. The reference: reported. */
    function expectSpread(t, pids) {
      if (balancer === "rs") assert.deepEqual(new Set(pids), new Set(c.pids), "both workers serve clients");
      else t.diagnostic(`${name}: ${new Set(pids).size} of ${c.pids.length} workers got clients of a burst of ${pids.length}`);
    }

    it("default transports: clients start with polling, upgrade to WebSocket, reach both workers, and broadcasts cross workers", async (t) => {
      const sockets = Array.from({ length: 12 }, () => clients.connect(c.url));
      await Promise.all(sockets.map((s) => connected(s)));
      await Promise.all(sockets.map((s) => upgraded(s)));
      const pids = await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("whoami")));
      expectSpread(t, pids);
      await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("join", "all")));
      const got = sockets.map((s) => new Promise((r) => s.once("msg", r)));
      sockets[0].emit("to", "all", "hello");
      assert.deepEqual(await Promise.all(got), sockets.map(() => "hello"));
      expectNoErrors(t, sockets);
      for (const s of sockets) s.close();
    });

    it("polling only: every request of every session reaches the session's worker", async (t) => {
      const sockets = Array.from({ length: 12 }, () => clients.connect(c.url, { transports: ["polling"] }));
      await Promise.all(sockets.map((s) => connected(s)));
      const first = await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("whoami")));
      expectSpread(t, first);
      for (let round = 0; round < 5; round++) {
        const again = await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("whoami")));
        assert.deepEqual(again, first);
      }
      expectNoErrors(t, sockets);
      for (const s of sockets) s.close();
    });

    it("1500 polling sessions, 60 at a time, each connecting and making a round trip; the primary's JS thread stays idle", async (t) => {
      const errors = [];
      let done = 0;
      const js0 = (await c.ask("jsThread")).ns;
      await pool(1500, 60, async (i) => {
        const s = clients.connect(c.url, { transports: ["polling"], reconnection: false, forceNew: true });
        try {
          await connected(s, 10_000);
          assert.equal(await s.timeout(10_000).emitWithAck("echo", i), i);
          done++;
        } catch (e) {
          errors.push(e.message);
        } finally {
          s.close();
        }
      });
      const jsPerSession = ((await c.ask("jsThread")).ns - js0) / 1500 / 1000;
      const unknown = errors.filter((e) => /Session ID unknown|xhr poll error/.test(e)).length;
      t.diagnostic(`${name}: ${done} sessions done, ${errors.length} failed (${unknown} session/poll errors); primary JS thread ${jsPerSession.toFixed(1)} µs per session`);
      if (balancer === "rs") {
        assert.deepEqual(errors, []);
        // Each session is several HTTP requests on new connections, and none of them wakes the
        // primary's JS thread (strace: about a dozen wake-ups in the whole run, V8's own
        // housekeeping). @socket.io/sticky spends about 2 ms per session there.
        assert.ok(jsPerSession < 50, `primary JS thread: ${jsPerSession} µs per session`);
        const { stats } = await c.ask("stats");
        assert.equal(stats.sticky.unknownSessions, 0);
      } else {
        assert.ok(done > 1000, `${done} sessions done`);
      }
    });
  });
}

/** Engine.IO over plain HTTP requests, to control which connection carries what. */
class RawSession {
  static async open(url) {
    // A fresh connection per handshake, so that sessions spread.
    const res = await httpRequest(`${url}/socket.io/?EIO=4&transport=polling`, { agent: false });
    assert.equal(res.status, 200, res.body);
    const s = new RawSession(url, JSON.parse(res.body.slice(1)).sid);
    await s.post("40", false);
    const packets = await s.poll(false);
    assert.ok(packets.some((p) => p.startsWith("40")), `no connect packet in ${packets}`);
    s.ack = 0;
    return s;
  }

  constructor(url, sid) {
    this.base = `${url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
    this.sid = sid;
  }

  async post(body, agent) {
    const res = await httpRequest(this.base, { method: "POST", body, agent, headers: { "content-type": "text/plain" } });
    return res;
  }

  async poll(agent) {
    const res = await httpRequest(this.base, { agent });
    assert.equal(res.status, 200, `poll of ${this.sid}: ${res.status} ${res.body}`);
    return res.body.split("\x1e");
  }

  /** Emits "whoami" with an ack and returns [the pid, whether both requests reused a connection]. */
  async whoami(agent) {
    const id = ++this.ack;
    const sent = await this.post(`42${id}["whoami"]`, agent);
    if (sent.status !== 200) return { status: sent.status, body: sent.body };
    const res = await httpRequest(this.base, { agent });
    if (res.status !== 200) return { status: res.status, body: res.body, reused: res.reused };
    const packet = res.body.split("\x1e").find((p) => p.startsWith(`43${id}`));
    return { status: 200, pid: packet && JSON.parse(packet.slice(`43${id}`.length))[0], reused: sent.reused && res.reused };
  }
}

/** Opens sessions until two have different workers. */
async function twoSessionsOnTwoWorkers(url) {
  const first = await RawSession.open(url);
  for (let i = 0; i < 10; i++) {
    const other = await RawSession.open(url);
    const a = await first.whoami(false);
    const b = await other.whoami(false);
    if (a.pid !== b.pid) return [first, other, a.pid, b.pid];
  }
  throw new Error("all sessions landed on one worker");
}

describe("a keep-alive connection that carries requests of two sessions on different workers", { timeout: 60_000 }, () => {
  for (const balancer of ["rs", "stock"]) {
    it(balancer === "rs" ? "setupPrimary({ sticky }): every request reaches its session's worker" : "@socket.io/sticky: every request is answered (outcome reported)", async (t) => {
      const c = await startStickyCluster({ balancer, workers: 2 });
      try {
        const [a, b, pidA, pidB] = await twoSessionsOnTwoWorkers(c.url);
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        const results = [];
        for (const s of [a, b, a, b, b, a]) results.push(await s.whoami(agent));
        agent.destroy();
        if (balancer === "rs") {
          assert.deepEqual(
            results.map((r) => r.pid),
            [pidA, pidB, pidA, pidB, pidB, pidA],
          );
          assert.ok(results.slice(1).every((r) => r.reused), "the requests shared one connection");
          const { stats } = await c.ask("stats");
          assert.ok(stats.sticky.handedBack >= 3, `handedBack ${stats.sticky.handedBack}`);
          assert.equal(sidOwner(a.sid), pidA);
          assert.equal(sidOwner(b.sid), pidB);
        } else {
          assert.ok(results.every((r) => typeof r.status === "number"));
          const right = results.filter((r, i) => r.pid === [pidA, pidB, pidA, pidB, pidB, pidA][i]).length;
          const reused = results.filter((r) => r.reused).length;
          t.diagnostic(`@socket.io/sticky: ${right}/6 answered by their session's worker, ${reused} on a reused connection`);
        }
      } finally {
        await c.stop();
      }
    });
  }
});

describe("setupPrimary({ sticky }): failures", { timeout: 120_000 }, () => {
  it("a SIGKILLed worker's clients reconnect through the balancer and recover their session on another worker", async () => {
    const c = await startStickyCluster({ balancer: "rs", workers: 2, recovery: true });
    const clients = clientPool();
    try {
      const sockets = [];
      for (const transports of [["polling"], ["polling"], undefined, undefined, ["polling"], undefined]) {
        sockets.push(clients.connect(c.url, transports ? { transports } : {}));
      }
      await Promise.all(sockets.map((s) => connected(s)));
      await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("join", "kept")));
      // A broadcast gives every client an offset to recover from.
      const before = sockets.map((s) => new Promise((r) => s.once("msg", r)));
      sockets[0].emit("to", "kept", "before");
      await Promise.all(before);
      const pids = await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("whoami")));
      const victim = pids[0];
      const onVictim = sockets.filter((_, i) => pids[i] === victim);
      assert.ok(onVictim.length > 0);
      const recovered = onVictim.map(
        (s) =>
          new Promise((resolve) => {
            s.once("connect", () => resolve(s.recovered));
          }),
      );
      const { pids: after } = await c.ask("kill", { pid: victim });
      assert.ok(!after.includes(victim));
      assert.deepEqual(await Promise.all(recovered), onVictim.map(() => true), "every session recovered");
      const now = await Promise.all(onVictim.map((s) => s.timeout(5000).emitWithAck("whoami")));
      assert.ok(now.every((p) => p !== victim && after.includes(p)));
      // The rooms came back with the session: a broadcast reaches everyone.
      const got = sockets.map((s) => new Promise((r) => s.once("msg", r)));
      sockets[sockets.length - 1].emit("to", "kept", "after");
      assert.deepEqual(await Promise.all(got), sockets.map(() => "after"));
    } finally {
      clients.closeAll();
      await c.stop();
    }
  });

  it("garbage, oversized heads, slow and silent connections are answered and closed; connected clients see nothing", async () => {
    const c = await startStickyCluster({
      balancer: "rs",
      workers: 2,
      sticky: { headersTimeout: 500, maxHeaderSize: 4096, maxPendingConnections: 50 },
    });
    const clients = clientPool();
    const raw = (bytes, { end = true } = {}) =>
      new Promise((resolve) => {
        const sock = net.connect(c.port, "127.0.0.1");
        let data = "";
        sock.on("data", (d) => (data += d));
        sock.on("error", () => {});
        sock.on("close", () => resolve(data));
        if (bytes) sock.write(bytes);
        if (bytes && end) sock.end();
      });
    try {
      const s = clients.connect(c.url, { transports: ["polling"] });
      await connected(s);
      let disconnects = 0;
      s.on("disconnect", () => disconnects++);
      const slow = net.connect(c.port, "127.0.0.1");
      slow.on("error", () => {});
      slow.write("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
      const drip = setInterval(() => slow.write("X-Drip: 1\r\n"), 100);
      const answers = await Promise.all([
        raw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x00, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])),
        raw(`GET /${"a".repeat(10_000)} HTTP/1.1\r\n\r\n`),
        raw("GET / HTTP/1.1\r\n" + "X-Big: y\r\n".repeat(800) + "\r\n"),
        raw(null),
        raw("GET /socket.io/?EIO=4&transport=polling&sid=aaaaaaaaaaaaaaaaaaaa.zzzzz HTTP/1.1\r\n\r\n"),
        new Promise((resolve) => {
          let data = "";
          slow.on("data", (d) => (data += d));
          slow.on("close", () => {
            clearInterval(drip);
            resolve(data);
          });
        }),
      ]);
      assert.match(answers[0], /^HTTP\/1\.1 400 /);
      assert.match(answers[1], /^HTTP\/1\.1 431 /);
      assert.match(answers[2], /^HTTP\/1\.1 431 /);
      assert.match(answers[3], /^HTTP\/1\.1 408 /);
      assert.match(answers[4], /^HTTP\/1\.1 400 [^]*Session ID unknown/);
      assert.match(answers[5], /^HTTP\/1\.1 408 /);
      // More connections waiting for their head than allowed: the extra ones close at once.
      const idle = Array.from({ length: 60 }, () => raw(null));
      const idleAnswers = await Promise.all(idle);
      assert.ok(idleAnswers.filter((a) => a === "").length >= 10, "connections over maxPendingConnections closed at once");
      const { stats } = await c.ask("stats");
      assert.ok(stats.sticky.overCapacity >= 10);
      assert.equal(stats.sticky.badRequests, 1);
      assert.equal(stats.sticky.tooLarge, 2);
      assert.ok(stats.sticky.headerTimeouts >= 2);
      // The connected client never noticed.
      assert.equal(typeof (await s.timeout(5000).emitWithAck("whoami")), "number");
      assert.equal(disconnects, 0);
    } finally {
      clients.closeAll();
      await c.stop();
    }
  });

  it("a new setupPrimary() after close() serves the same port: workers reconnect to its balancer, clients connect again", async () => {
    const c = await startStickyCluster({ balancer: "rs", workers: 2 });
    const clients = clientPool();
    try {
      const before = clients.connect(c.url, { transports: ["polling"] });
      await connected(before);
      await c.ask("restart");
      const sockets = Array.from({ length: 6 }, () => clients.connect(c.url, { transports: ["polling"] }));
      await Promise.all(sockets.map((s) => connected(s)));
      const pids = await Promise.all(sockets.map((s) => s.timeout(5000).emitWithAck("whoami")));
      assert.deepEqual(new Set(pids), new Set(c.pids));
    } finally {
      clients.closeAll();
      await c.stop();
    }
  });

  it("balance: \"ip-hash\" with ipHeader: the same forwarded address reaches the same worker, others spread", async () => {
    const c = await startStickyCluster({ balancer: "rs", workers: 2, sticky: { balance: "ip-hash", ipHeader: "X-Forwarded-For" } });
    try {
      const ownerFor = async (ip) => {
        const res = await httpRequest(`${c.url}/socket.io/?EIO=4&transport=polling`, {
          agent: false,
          headers: { "x-forwarded-for": `${ip}, 10.0.0.1` },
        });
        return sidOwner(JSON.parse(res.body.slice(1)).sid);
      };
      const owners = new Map();
      for (let i = 1; i <= 16; i++) owners.set(`192.168.7.${i}`, await ownerFor(`192.168.7.${i}`));
      for (const [ip, pid] of owners) assert.equal(await ownerFor(ip), pid, ip);
      assert.deepEqual(new Set(owners.values()), new Set(c.pids));
    } finally {
      await c.stop();
    }
  });

  it("setupPrimary() throws for a port in use and for bad sticky options, and starts again afterwards", async () => {
    const blocker = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    const script = `
      const { setupPrimary } = require(${JSON.stringify(ROOT)});
      const out = [];
      for (const sticky of [{ port: ${blocker.address().port}, host: "127.0.0.1" }, { port: -1 }, { port: 0, balance: "random" }, { port: 0, ipHeader: "bad header" }, "3000"]) {
        try { setupPrimary({ sticky }); out.push("started"); } catch (e) { out.push(e.code || e.name); }
      }
      const h = setupPrimary({ sticky: { port: 0, host: "127.0.0.1" } });
      out.push(typeof h.sticky.port, h.stats().sticky.connections);
      h.close();
      console.log(JSON.stringify(out));
    `;
    const out = await new Promise((resolve, reject) =>
      execFile(process.execPath, ["-e", script], { timeout: 20_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    blocker.close();
    assert.deepEqual(JSON.parse(out), ["ERR_SOCKET_IO_CLUSTER_LISTEN", "TypeError", "TypeError", "TypeError", "TypeError", "number", 0]);
  });
});
