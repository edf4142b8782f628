"use strict";
// Fixture cluster worker: a Socket.IO server using OUR createAdapter() or the
// stock one (env IPC_FIXTURE_ADAPTER = "ours" | "stock").
//   "/"     the application namespace the tests observe through clients
//   "/ctl"  control: `run` executes an async function body in this worker
//           (args io, ctx, require) and acknowledges {ok, value | error}
// Server-side events "ping-srv" are logged in ctx.srvLog and answered with
// {pid, args}. With cfg.userMessages the user's own process.on("message")
// handler (registered before the adapter) logs everything in ctx.userLog.

const cluster = require("node:cluster");
const http = require("node:http");
const { Server } = require("socket.io");

const cfg = JSON.parse(process.env.IPC_FIXTURE || "{}");
const kind = process.env.IPC_FIXTURE_ADAPTER || "ours";

const userLog = [];
if (cfg.userMessages) process.on("message", (msg) => userLog.push(msg));

const { createAdapter } = kind === "stock" ? require("@socket.io/cluster-adapter") : require("../..");

const httpServer = http.createServer();
const io = new Server(httpServer);
io.adapter(createAdapter(cfg.adapterOptions || {}));

function info() {
  return {
    pid: process.pid,
    id: cluster.worker.id,
    kind,
    transport: io.of("/").adapter.transport || null,
    adapterClass: io.of("/").adapter.constructor.name,
  };
}

const srvLog = [];
io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  socket.data = { pid: process.pid, worker: cluster.worker.id, tag: auth.tag || null };
  socket.on("whoami", (cb) => cb(info()));
});
io.on("ping-srv", (...args) => {
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
  srvLog.push(args);
  if (cb) cb({ pid: process.pid, args });
});

const ctx = { cluster, srvLog, userLog, kind, cfg, info };
const AsyncFunction = (async () => {}).constructor;
io.of("/ctl").on("connection", (socket) => {
  socket.on("whoami", (cb) => cb(info()));
  socket.on("run", async (code, cb) => {
    try {
      cb({ ok: true, value: await new AsyncFunction("io", "ctx", "require", code)(io, ctx, require) });
    } catch (err) {
      cb({ ok: false, error: String((err && err.stack) || err) });
    }
  });
});

if (cfg.sticky) {
  require("@socket.io/sticky").setupWorker(io);
  process.send({ fixture: "ready", ...info(), port: null });
} else {
  // exclusive: this worker's own port, so that a test can reach each worker.
  httpServer.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
    process.send({ fixture: "ready", ...info(), port: httpServer.address().port });
  });
}
