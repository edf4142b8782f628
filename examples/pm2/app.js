"use strict";
// One PM2 cluster instance (see ecosystem.config.js). PM2's daemon accepts the connections and hands
// each one to an instance with sticky sessions, so both HTTP long-polling and WebSocket work.
const http = require("node:http");
const path = require("node:path");
const { Server } = require("socket.io");
const { createAdapter } = require("socket.io-cluster-rs");

// The worker half of the sticky sessions must be the @socket.io/sticky version whose primary half
// PM2's daemon runs: @socket.io/pm2 6.x ships sticky 1.x, whose protocol differs from sticky 2.x.
// It is resolved from PM2's own installation, global or local: the ProcessContainer that runs this
// file is loaded from inside the @socket.io/pm2 package.
function stickySetupWorker() {
  const container = Object.keys(require.cache).find((f) => /[\\/]lib[\\/]ProcessContainer\.js$/.test(f));
  const from = container ? [path.dirname(container)] : [__dirname];
  return require(require.resolve("@socket.io/sticky", { paths: from })).setupWorker;
}
const setupWorker = stickySetupWorker();

const httpServer = http.createServer();
const io = new Server(httpServer);
io.adapter(createAdapter());
setupWorker(io);

io.on("connection", (socket) => {
  socket.emit("hello", `instance ${process.env.NODE_APP_INSTANCE} (pid ${process.pid})`);
  // Reaches the clients of every instance.
  socket.on("chat", (msg) => io.emit("chat", msg));
});

// PM2 sends SIGINT on `pm2 reload` / `pm2 stop`: close so the other instances forget this one at once.
process.on("SIGINT", () => {
  io.close();
  setTimeout(() => process.exit(0), 300).unref();
});
