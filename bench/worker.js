"use strict";
// Cluster worker under test: a socket.io 4.8 server (WebSocket only) on its own
// loopback port, using the adapter given by BENCH_ADAPTER_PATH. The driver tells
// it to emit broadcasts or to run request loops over the control channel.

const http = require("node:http");
const { Server } = require("socket.io");
const { serveControl } = require("./control");
const { nowNs, payloadFactory } = require("./payload");
const { Histogram } = require("./stats");

const idx = Number(process.env.BENCH_WORKER_IDX);
const { createAdapter } = require(process.env.BENCH_ADAPTER_PATH);

const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });
io.adapter(createAdapter());

io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  if (room !== undefined) socket.join("room-" + room);
});
// Target of serverSideEmitWithAck from other workers: answer at once.
io.on("bench-ping", (_t, cb) => cb(idx));

// Our primary is gone: nothing left to measure.
process.on("disconnect", () => process.exit(0));
// The primary asks profiled workers to exit (so that --cpu-prof writes its file).
process.on("SIGTERM", () => process.exit(0));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK_MS = 5;

/**
 * Emits payloads to everyone (io.emit) or round-robin over `rooms` rooms
 * (io.to(room).emit). rate=0 is a burst: `count` messages as fast as possible,
 * `batch` per macrotask so socket writes and the adapter's I/O interleave. With
 * rate>0 a timer emits whatever the elapsed time calls for, at most 4 ticks'
 * worth per tick (a stalled loop shows up as a lower achieved rate, not as a
 * giant catch-up burst), and stops at `count` or after `durationMs`.
 */
function emitLoop(a) {
  const make = payloadFactory(a.kind, a.size);
  const perRoom = a.rooms ? new Array(a.rooms).fill(0) : null;
  let sent = 0;
  const emitOne = () => {
    const seq = sent++;
    const p = make(a.sid, idx, seq);
    if (perRoom) {
      const r = seq % a.rooms;
      perRoom[r]++;
      io.to("room-" + r).emit("m", p);
    } else io.emit("m", p);
  };
  return new Promise((resolve) => {
    const t0 = nowNs();
    const finish = () => resolve({ emitted: sent, perRoom, startNs: t0, endNs: nowNs() });
    if (!a.rate) {
      const step = () => {
        const n = Math.min(a.batch || 100, a.count - sent);
        for (let i = 0; i < n; i++) emitOne();
        if (sent < a.count) setImmediate(step);
        else finish();
      };
      return step();
    }
    const deadline = t0 + a.durationMs * 1e6;
    const cap = Math.max(1, Math.ceil(((a.rate * TICK_MS) / 1000) * 4));
    const tick = () => {
      const now = nowNs();
      const due = Math.min(a.count, Math.floor(((now - t0) / 1e9) * a.rate) + 1);
      for (let n = Math.min(due - sent, cap); n > 0; n--) emitOne();
      if (sent >= a.count || now >= deadline) return finish();
      setTimeout(tick, TICK_MS);
    };
    tick();
  });
}

/** One request; resolves to the number of answers (sockets or acks). */
function request(op, room) {
  if (op === "fetchAll") return io.fetchSockets().then((s) => s.length);
  if (op === "fetchRoom") return io.in("room-" + room).fetchSockets().then((s) => s.length);
  if (op === "ssea") return io.serverSideEmitWithAck("bench-ping", nowNs()).then((r) => r.length);
  return Promise.reject(new Error(`unknown op ${op}`));
}

/**
 * Runs `concurrency` request loops until `count` requests were started or
 * `durationMs` elapsed. Records each request as [start, end, ok] (capped) for
 * the kill scenario, and a latency histogram.
 */
function requestLoop(a) {
  const hist = new Histogram();
  const log = { start: [], end: [], ok: [] };
  const st = { ok: 0, failed: 0, incomplete: 0, started: 0, lastError: null };
  const t0 = nowNs();
  const deadline = t0 + a.durationMs * 1e6;
  const one = async () => {
    const s = nowNs();
    let ok = false;
    try {
      const n = await request(a.op, a.room);
      if (a.expect != null && n !== a.expect) st.incomplete++;
      else ok = true;
    } catch (e) {
      st.lastError = String(e && e.message);
    }
    const e = nowNs();
    if (ok) st.ok++;
    else st.failed++;
    hist.record((e - s) / 1e3);
    if (log.start.length < 100_000) {
      log.start.push(s);
      log.end.push(e);
      log.ok.push(ok);
    }
  };
  const slot = async () => {
    while (st.started < a.count && nowNs() < deadline) {
      st.started++;
      await one();
      if (a.pauseMs) await sleep(a.pauseMs);
    }
  };
  const done = Promise.all(Array.from({ length: a.concurrency }, slot)).then(() => nowNs());
  return { hist, log, st, t0, done };
}

let probe = null; // the kill scenario's request loop: started, then read after the kill

const handlers = {
  emit: (a) => emitLoop(a),
  request: async (a) => {
    const r = requestLoop(a);
    const endNs = await r.done;
    return { ...r.st, hist: r.hist.toJSON(), startNs: r.t0, endNs };
  },
  probeStart: async (a) => {
    probe = requestLoop(a);
    return { startNs: probe.t0 };
  },
  // Summarises the kill scenario relative to the driver's SIGKILL time (same
  // monotonic clock). Requests still pending when the loop stops are reported,
  // not awaited: with the stock adapter they may need seconds more to time out.
  probeResult: async ({ killNs, windowMs }) => {
    const endNs = killNs + windowMs * 1e6;
    const waitMs = Math.max(0, (endNs - nowNs()) / 1e6) + 100;
    await Promise.race([probe.done, sleep(waitMs)]);
    const { start, end, ok } = probe.log;
    const winEnd = endNs;
    let pendingAtKill = 0;
    let settleAfterKill = 0;
    let failedAfterKill = 0;
    let okAfterKill = 0;
    let lastFailAfterKill = 0;
    let failedBeforeKill = 0;
    for (let i = 0; i < start.length; i++) {
      if (start[i] < killNs && end[i] > killNs) {
        pendingAtKill++;
        settleAfterKill = Math.max(settleAfterKill, end[i] - killNs);
      }
      if (end[i] > killNs && end[i] <= winEnd) {
        if (ok[i]) okAfterKill++;
        else {
          failedAfterKill++;
          lastFailAfterKill = Math.max(lastFailAfterKill, end[i] - killNs);
        }
      } else if (end[i] <= killNs && !ok[i]) failedBeforeKill++;
    }
    const settled = probe.st.ok + probe.st.failed;
    return {
      pendingAtKill,
      settleAfterKillMs: settleAfterKill / 1e6,
      failedAfterKill,
      okAfterKill,
      lastFailAfterKillMs: lastFailAfterKill / 1e6,
      failedBeforeKill,
      unsettledAtEnd: probe.st.started - settled,
      lastError: probe.st.lastError,
    };
  },
};

// Listen first so that the hello can carry the port. `exclusive: true` makes
// this worker bind its own socket; without it node:cluster would hand every
// worker the same shared port-0 handle.
httpServer.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
  serveControl({ role: "worker", idx, port: httpServer.address().port }, handlers);
});
