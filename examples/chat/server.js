"use strict";
// Cluster-wide chat demo for socket.io-cluster-rs. Run with `npm start`, open http://localhost:3000
// in a few tabs and watch them land on different workers while still chatting with each other.
//
// Routing: one port for the whole cluster. The primary's sticky balancer (in Rust, off its JS
// thread) accepts every connection and hands it to a worker; every request of a session reaches
// the worker that owns it, so clients use Socket.IO's default transports: HTTP long-polling first,
// then an upgrade to WebSocket. Workers do not listen themselves.

const cluster = require("node:cluster");
const http = require("node:http");
const os = require("node:os");
const { createAdapter, setupPrimary } = require("../..");

const PORT = Number(process.env.PORT) || 3000;
const HOST = process.env.HOST || "localhost";
const WORKERS = Number(process.env.WORKERS) || os.availableParallelism();

if (cluster.isPrimary) runPrimary();
else runWorker();

function runPrimary() {
  // The adapter's hub lives in the primary: it relays messages between the workers. With
  // `sticky`, the primary also listens on PORT and balances connections to the workers.
  let hub;
  try {
    hub = setupPrimary({ sticky: { port: PORT, host: HOST } });
  } catch (err) {
    // e.g. the port is taken: one clear line instead of a stack trace.
    console.error(`chat: ${err.message}`);
    process.exit(1);
  }
  const workers = Array.from({ length: WORKERS }, () => cluster.fork());
  const alive = () => workers.filter((w) => !w.isDead());
  // The primary talks to every client itself, through the hub.
  const announce = (text) => {
    try {
      hub.emitter.emit("system", text);
    } catch (err) {
      console.error(`chat: cannot announce "${text}": ${err.message}`);
    }
  };

  let ready = 0;
  cluster.on("message", (worker, msg) => {
    if (msg !== "ready") return;
    announce(`worker ${worker.id} joined the cluster`);
    // One summary line once everyone is up (scripts such as smoke.js wait for it).
    if (++ready === WORKERS) {
      console.log(`chat: ${WORKERS} workers listening on http://${HOST}:${hub.sticky.port} (one port, balanced by the primary)`);
    }
  });

  let shuttingDown = false;
  cluster.on("exit", (worker, code, signal) => {
    // No automatic re-fork: a worker that dies at startup (e.g. port taken) would just loop.
    if (!shuttingDown) {
      console.error(`chat: worker ${worker.id} died (${signal || code})`);
      announce(`worker ${worker.id} left the cluster; its users reconnect to another one`);
    }
    if (alive().length === 0) process.exit(shuttingDown ? 0 : 1);
  });

  const shutdown = (sig) => {
    if (shuttingDown) return;
    shuttingDown = true;
    console.log(`chat: ${sig} received, stopping workers`);
    // Ask each worker to close its clients, then cut its IPC channel. worker.disconnect() alone
    // would wait forever, because open WebSockets keep the server from closing.
    for (const w of alive()) {
      if (!w.isConnected()) continue;
      w.send("shutdown");
      w.disconnect();
    }
    // Do not hang on a stuck worker: hard-kill whatever is left after 5 s.
    setTimeout(() => {
      for (const w of alive()) w.process.kill("SIGKILL");
      process.exit(1);
    }, 5000).unref();
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

function runWorker() {
  const { Server } = require("socket.io");
  const workerId = cluster.worker.id;

  const httpServer = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  // Connection state recovery, as in the Socket.IO tutorial: a client whose network drops for a
  // moment comes back (to any worker) with its id and every message it missed.
  const io = new Server(httpServer, { connectionStateRecovery: {}, adapter: createAdapter() });

  // Counts are cluster-wide: fetchSockets() asks every worker through the adapter, and
  // serverCount() reports how many Socket.IO servers the adapter currently knows about.
  async function broadcastStats() {
    try {
      const [sockets, servers] = await Promise.all([io.fetchSockets(), io.of("/").adapter.serverCount()]);
      io.emit("stats", { users: sockets.length, servers });
    } catch (err) {
      // A worker that just went away can make fetchSockets time out; the next event fixes the count.
      console.error(`worker ${workerId}: stats failed: ${err.message}`);
    }
  }

  io.on("connection", (socket) => {
    socket.emit("hello", { workerId, pid: process.pid, recovered: socket.recovered });
    broadcastStats();
    socket.on("chat", (text) => {
      if (typeof text !== "string" || !(text = text.trim())) return;
      // io.emit reaches the clients of every worker; that is exactly what the adapter is for.
      io.emit("chat", { from: workerId, text: text.slice(0, 500) });
    });
    // By the time "disconnect" fires the socket has left its rooms, so it is no longer counted.
    socket.on("disconnect", broadcastStats);
  });

  // No listen(): the primary's balancer hands this worker its connections.
  console.log(`worker ${workerId} (pid ${process.pid}) ready`);
  process.send("ready");

  // Ctrl-C signals the whole process group, so workers get SIGINT too; the primary drives the
  // shutdown, so here we only close cleanly (SIGTERM still works for a lone `kill <pid>`).
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    io.close(() => process.exit(0)); // disconnects clients and closes the HTTP server
  };
  process.on("message", (msg) => msg === "shutdown" && close());
  process.on("SIGINT", () => {});
  process.on("SIGTERM", close);
}

// Inline page, no build step. /socket.io/socket.io.js is served by socket.io itself.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>socket.io-cluster-rs chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { list-style: none; padding: .5em; height: 20em; overflow-y: auto; border: 1px solid #ccc; }
  #log b { color: #555; } form { display: flex; gap: .5em; } #text { flex: 1; }
</style></head>
<body>
  <h1>Cluster chat</h1>
  <p id="me">Connecting…</p>
  <p><span id="users">?</span> users online across <span id="servers">?</span> servers</p>
  <ul id="log"></ul>
  <form id="form"><input id="text" autocomplete="off" placeholder="Say something"><button>Send</button></form>
  <script src="/socket.io/socket.io.js"></script>
  <script>
    // Default transports: long-polling first, then WebSocket; the balancer keeps each session on its worker.
    const socket = io();
    const $ = (id) => document.getElementById(id);
    socket.on("hello", ({ workerId, pid, recovered }) => {
      $("me").textContent = "You are connected to worker " + workerId + " (pid " + pid + ")" +
        (recovered ? ": recovered, with the messages sent while you were away" : "");
      $("me").dataset.recovered = recovered ? "yes" : "no";
    });
    socket.on("disconnect", () => { $("me").textContent = "Disconnected, reconnecting…"; });
    socket.on("stats", ({ users, servers }) => {
      $("users").textContent = users;
      $("servers").textContent = servers;
    });
    socket.on("system", (text) => {
      const li = document.createElement("li");
      const note = document.createElement("i");
      note.textContent = "primary: " + text;
      li.append(note);
      $("log").append(li);
    });
    socket.on("chat", ({ from, text }) => {
      // textContent, never innerHTML: chat text is untrusted.
      const li = document.createElement("li");
      const who = document.createElement("b");
      who.textContent = "worker " + from + ": ";
      li.append(who, document.createTextNode(text));
      $("log").append(li);
      $("log").scrollTop = $("log").scrollHeight;
    });
    $("form").addEventListener("submit", (e) => {
      e.preventDefault();
      if ($("text").value.trim()) socket.emit("chat", $("text").value);
      $("text").value = "";
    });
  </script>
</body></html>`;
