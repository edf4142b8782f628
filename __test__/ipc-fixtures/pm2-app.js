"use strict";
// The application run by the real PM2 (@socket.io/pm2) in the ipc-pm2 test:
// a Socket.IO server with OUR adapter behind PM2's sticky primary (the daemon
// listens on PM2_PORT and runs the stock setupPrimary()). Clients trigger
// cluster operations with events and get the results in acknowledgements.

const http = require("node:http");
const path = require("node:path");
const { Server } = require("socket.io");
const { createAdapter } = require("../..");

// The worker half of sticky must match the primary half PM2's daemon runs:
// the copy @socket.io/pm2 itself depends on.
const pm2Dir = path.dirname(require.resolve("@socket.io/pm2/package.json"));
const { setupWorker } = require(require.resolve("@socket.io/sticky", { paths: [pm2Dir] }));

const httpServer = http.createServer();
const io = new Server(httpServer);
io.adapter(createAdapter());
setupWorker(io);

const transport = io.of("/").adapter.transport;
const safe = (fn) => async (...args) => {
  const cb = args.pop();
  try {
    cb({ ok: true, value: await fn(...args) });
  } catch (err) {
    cb({ ok: false, error: String(err && err.message) });
  }
};

io.on("connection", (socket) => {
  socket.data = { pid: process.pid };
  socket.on("whoami", safe(() => ({ pid: process.pid, transport, instance: process.env.NODE_APP_INSTANCE })));
  socket.on("do-broadcast", safe((tag) => void io.emit("bcast", tag, process.pid, Buffer.from([1, 2, 3]))));
  socket.on("fetch", safe(async () => (await io.fetchSockets()).map((s) => ({ id: s.id, pid: s.data.pid }))));
  socket.on("sse", safe(() => io.serverSideEmitWithAck("who")));
  socket.on("count", safe(() => io.of("/").adapter.serverCount()));
  socket.on("ack-all", safe(async () => (await io.timeout(2000).emitWithAck("ask", 1)).map((r) => r.id)));
});
io.on("who", (cb) => cb(process.pid));

// PM2 stops cluster instances with SIGINT (reload, delete): close the server
// (the adapter says goodbye to the other workers) and exit.
process.on("SIGINT", () => {
  console.log(`ipc-pm2-app ${process.pid}: SIGINT, closing`);
  io.close();
  setTimeout(() => process.exit(0), 300);
});

console.log(`ipc-pm2-app ${process.pid}: ready, transport=${transport}`);
