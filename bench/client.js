"use strict";
// Client process: holds socket.io-client connections to the workers, outside
// the cluster so their CPU does not count against the servers. Forked by the
// driver; commanded over the TCP control channel like the other processes.
//
// Per scenario ("arm" ... "collect") it counts unique deliveries per socket
// (a bitmap per socket and emitter, so duplicates cannot hide losses), wrong
// types, and latency split into local (emitter = the socket's worker) and
// remote deliveries.

const { io } = require("socket.io-client");
const { serveControl } = require("./control");
const { nowNs, decodePayload } = require("./payload");
const { Histogram } = require("./stats");

const idx = Number(process.env.BENCH_CLIENT_IDX);
const sockets = []; // { socket, w, room, seen: Uint8Array[] per emitter }
let st = null; // per-scenario state, null while not armed

process.on("disconnect", () => process.exit(0)); // the driver is gone

function onMessage(entry, p) {
  const now = nowNs();
  if (!st) return;
  const d = decodePayload(p, st.scratch);
  if (!d) return void st.corrupt++;
  if (d.sid !== st.sid) return void st.stale++; // late delivery from an earlier scenario
  if (d.w >= st.W || !(d.seq >= 0 && d.seq < st.maxCount)) return void st.corrupt++;
  let seen = entry.seen[d.w];
  if (!seen) seen = entry.seen[d.w] = new Uint8Array(st.maxCount);
  if (seen[d.seq]) return void st.dup++;
  seen[d.seq] = 1;
  st.unique++;
  if (d.kind !== st.kind) st.wrongType++;
  if (d.size !== st.size) st.wrongSize++;
  if (d.w === entry.w) {
    st.local.record((now - d.t) / 1e3);
    st.localN++;
  } else st.remote.record((now - d.t) / 1e3);
  if (st.first === 0) st.first = now;
  st.last = now;
}

const handlers = {
  /** Opens one connection per target and waits until all are connected. */
  connect: ({ targets, timeoutMs }) =>
    Promise.all(
      targets.map(
        (t) =>
          new Promise((resolve, reject) => {
            const socket = io(`http://127.0.0.1:${t.port}`, {
              transports: ["websocket"],
              forceNew: true,
              // A killed worker must not cause reconnect traffic during measurements.
              reconnection: false,
              query: { room: String(t.room) },
            });
            const entry = { socket, w: t.w, room: t.room, seen: [] };
            sockets.push(entry);
            socket.on("m", (p) => onMessage(entry, p));
            const timer = setTimeout(() => reject(new Error(`connect to worker ${t.w} timed out`)), timeoutMs);
            socket.once("connect", () => {
              clearTimeout(timer);
              resolve();
            });
            socket.once("connect_error", (e) => {
              clearTimeout(timer);
              reject(e);
            });
          }),
      ),
    ).then(() => sockets.length),

  arm: ({ sid, kind, size, maxCount, W }) => {
    for (const s of sockets) s.seen = [];
    st = {
      sid, kind, size, maxCount, W,
      scratch: {},
      unique: 0, dup: 0, stale: 0, corrupt: 0, wrongType: 0, wrongSize: 0, localN: 0,
      first: 0, last: 0,
      local: new Histogram(),
      remote: new Histogram(),
    };
    return true;
  },

  status: () => ({ unique: st ? st.unique : 0, last: st ? st.last : 0 }),

  collect: () => {
    const r = {
      unique: st.unique, dup: st.dup, stale: st.stale, corrupt: st.corrupt,
      wrongType: st.wrongType, wrongSize: st.wrongSize,
      first: st.first, last: st.last,
      local: st.local.toJSON(), remote: st.remote.toJSON(),
      connected: sockets.filter((s) => s.socket.connected).length,
    };
    st = null;
    for (const s of sockets) s.seen = [];
    return r;
  },

  exit: async () => setImmediate(() => process.exit(0)),
};

serveControl({ role: "client", idx }, handlers);
