"use strict";
// Sticky balancing, the worker's side (docs/sticky.md). When the primary runs
// the balancer (setupPrimary({ sticky })), the first Socket.IO server of this
// process with an HTTP server serves the connections the balancer hands over:
//
// - each arrives as a descriptor and the bytes the balancer already read; it
//   becomes a net.Socket given to the HTTP server as a new connection;
// - Engine.IO session ids end with "." and this process's pid in base 36, so
//   the balancer routes every later request of a session here without any
//   table to fill first;
// - a keep-alive connection may carry a later request of another worker's
//   session: that request goes back to the balancer with the connection,
//   which hands both to the right worker;
// - the number of Engine.IO clients is reported for least-loaded balancing.

const net = require("node:net");
const fs = require("node:fs");
const binding = require("./native");
const debug = require("./debug").logger("sticky");
const warnings = require("./warnings");

const PID_SUFFIX = `.${process.pid.toString(36)}`;

// One server per process serves the balancer.
let serving = null;

/**
 * Serves the balancer's connections with `io` (a Socket.IO server) when the
 * primary of the hub at `hubPath` runs one. Called by every adapter; the
 * first server that can serve does. An adapter given to the Server's
 * constructor is made before the server is attached to its HTTP server:
 * then this waits for attach().
 */
function serveSticky(io, hubPath) {
  if (serving || !io) return;
  if (!io.engine) return afterAttach(io, () => serveSticky(io, hubPath));
  const worker = new StickyWorker(io, hubPath);
  // No balancer in the primary: nothing to do.
  if (!worker.connect()) return;
  if (!io.httpServer) {
    worker.close();
    warnings.warn(
      "socket.io-cluster-rs: the primary balances connections (setupPrimary({ sticky })), but this worker's Socket.IO server has no HTTP server to give them to; create it with new Server(httpServer)",
      "sticky-no-http-server",
    );
    return;
  }
  serving = worker;
  worker.start();
}

const WAITING = Symbol("socket.io-cluster-rs: waiting for attach()");

/** Runs `fn` once `io.attach()` (which listen() calls too) has run. */
function afterAttach(io, fn) {
  if (io[WAITING]) return;
  io[WAITING] = true;
  const original = io.attach;
  const own = Object.hasOwn(io, "attach");
  io.attach = function attach(...args) {
    if (own) io.attach = original;
    else delete io.attach;
    const out = original.apply(this, args);
    fn();
    return out;
  };
}

/** The owner pid a session id carries (see PID_SUFFIX), or null. */
function sidOwner(sid) {
  const dot = sid.lastIndexOf(".");
  if (dot < 0) return null;
  const pid = parseInt(sid.slice(dot + 1), 36);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

class StickyWorker {
  constructor(io, hubPath) {
    this.io = io;
    this.hubPath = hubPath;
    this.engine = io.engine;
    this.server = null;
    // The handoff channel of the moment (a new one after each loss).
    this.channel = null;
    this.closed = false;
    this.attempts = 0;
    this.retryTimer = null;
    // Sockets made from handed connections: only their requests may go back.
    this.handed = new WeakSet();
    this.reportScheduled = false;
  }

  /** Opens a handoff channel; false when the primary runs no balancer. */
  connect() {
    try {
      this.channel = new binding.StickyChannel(
        this.hubPath,
        (handed) => this.onConnection(handed),
        (reason) => this.onChannelClosed(reason),
      );
      return true;
    } catch (err) {
      debug("no sticky balancer: %s", err.message);
      return false;
    }
  }

  start() {
    this.server = this.io.httpServer;
    suffixSessionIds(this.engine);
    // Engine.IO runs middlewares on every request and upgrade before it
    // looks the session up.
    this.engine.use((req, res, next) => this.checkOwner(req, next));
    this.engine.on("connection", (socket) => {
      this.scheduleReport();
      socket.once("close", () => this.scheduleReport());
    });
    this.server.once("close", () => this.close());
    debug("serving the sticky balancer's connections");
  }

  /** A connection from the balancer, with the bytes it read. */
  onConnection({ fd, bytes }) {
    if (!this.channel) return fs.closeSync(fd);
    let socket;
    try {
      socket = new net.Socket({ fd, readable: true, writable: true });
    } catch (err) {
      debug("cannot use a handed connection: %s", err.message);
      try {
        fs.closeSync(fd);
      } catch {}
      return;
    }
    this.handed.add(socket);
    // The balancer counts connections without a session handed since the
    // last report against this worker (a page load, a handshake: it cannot
    // tell which will start a session); a fresh report keeps its estimate
    // close. Requests of a session (the bulk of long-polling) need none.
    if (!carriesSession(bytes)) this.scheduleReport();
    this.server.emit("connection", socket);
    // What the balancer read comes first; the HTTP server parses it as if
    // it had read it itself, then reads on from the socket.
    if (bytes.length > 0) socket.emit("data", bytes);
    socket.resume();
  }

  /**
   * The balancer is gone (its primary called close(), or exits): this worker
   * keeps serving the connections it has and tries a new channel with backoff
   * (50 ms doubling to 2 s), for a balancer a new setupPrimary() starts.
   */
  onChannelClosed(reason) {
    if (!this.channel) return;
    this.channel.close();
    this.channel = null;
    warnings.warn(
      `socket.io-cluster-rs: this worker (pid ${process.pid}) lost the sticky balancer (${reason}); it keeps serving the connections it has`,
      "sticky-lost",
    );
    this.retry();
  }

  retry() {
    if (this.closed) return;
    const delay = Math.min(2_000, 50 * 2 ** this.attempts++);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.closed) return;
      if (!this.connect()) return this.retry();
      warnings.warn(
        `socket.io-cluster-rs: this worker (pid ${process.pid}) serves the sticky balancer again, after ${this.attempts} attempt(s)`,
        "sticky-back",
      );
      this.attempts = 0;
      this.scheduleReport();
    }, delay);
    // Unref'd: retrying never keeps a worker running.
    this.retryTimer.unref();
  }

  /** Engine.IO middleware: a request of another worker's session goes back. */
  checkOwner(req, next) {
    const sid = req._query && req._query.sid;
    if (!sid || !this.channel || !this.handed.has(req.socket)) return next();
    const owner = sidOwner(sid);
    if (owner === null || owner === process.pid) return next();
    readBody(req, this.engine.opts.maxHttpBufferSize, (body) => this.handBack(req, body));
  }

  handBack(req, body) {
    const socket = req.socket;
    const fd = socket._handle && socket._handle.fd;
    if (!this.channel || typeof fd !== "number" || fd < 0) return socket.destroy();
    try {
      this.channel.handBack(fd, Buffer.concat([requestHead(req, body.length), body]));
    } catch (err) {
      debug("could not hand a connection back: %s", err.message);
    }
    // The balancer has its own descriptor now; this one closes without a
    // word to the client (nothing was written).
    socket.destroy();
  }

  scheduleReport() {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => {
      this.reportScheduled = false;
      if (this.channel) this.channel.reportLoad(this.engine.clientsCount);
    });
  }

  /** Its server closed: no more connections for it. */
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.channel) this.channel.close();
    this.channel = null;
    // Another server of this process may serve the balancer.
    if (serving === this) serving = null;
  }
}

/**
 * Makes every session id of `engine` end with this process's pid, also
 * when the application replaces generateId later.
 */
function suffixSessionIds(engine) {
  let generate = engine.generateId;
  const suffixed = (req) => {
    const id = generate.call(engine, req);
    return typeof id === "string" ? id + PID_SUFFIX : Promise.resolve(id).then((v) => `${v}${PID_SUFFIX}`);
  };
  Object.defineProperty(engine, "generateId", {
    configurable: true,
    get: () => suffixed,
    set: (fn) => {
      generate = fn;
    },
  });
}

/** True when the request line at the start of `bytes` has a `sid` query parameter. */
function carriesSession(bytes) {
  const lineEnd = bytes.indexOf("\r\n");
  const sid = bytes.indexOf("sid=");
  return sid !== -1 && (lineEnd === -1 || sid < lineEnd);
}

/**
 * Calls `done` with the request's body (none for an upgrade); a body over
 * `limit` bytes (Engine.IO's maxHttpBufferSize) closes the connection.
 */
function readBody(req, limit, done) {
  if (req.headers.upgrade || (!req.headers["content-length"] && !req.headers["transfer-encoding"])) {
    return done(Buffer.alloc(0));
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > limit) return req.socket.destroy();
    chunks.push(c);
  });
  req.on("end", () => done(Buffer.concat(chunks)));
  req.on("error", () => req.socket.destroy());
}

/** The request's head as it came, with the length of the body as read. */
function requestHead(req, bodyLength) {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === "content-length" || name === "transfer-encoding") continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  if (bodyLength > 0 || req.method !== "GET") head += `Content-Length: ${bodyLength}\r\n`;
  return Buffer.from(`${head}\r\n`, "latin1");
}

module.exports = { serveSticky, sidOwner };
