"use strict";
// Test-side helpers: start a fixture cluster (primary.js) as a child process,
// connect real socket.io-client clients, run code in a worker, wait for things.

const { fork } = require("node:child_process");
const path = require("node:path");
const { io: ioc } = require("socket.io-client");

const PRIMARY = path.join(__dirname, "..", "fixtures", "ipc", "primary.js");

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns something truthy; throws after `timeout` ms. */
async function waitFor(fn, { timeout = 5000, interval = 15, message = "a condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : ` (last value ${JSON.stringify(last)})`;
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${why}`);
    }
    await delay(interval);
  }
}

/** Bytes of a binary value, or null when the value is not binary. */
function bytesOf(value) {
  if (Buffer.isBuffer(value)) return [...value];
  if (value instanceof ArrayBuffer) return [...new Uint8Array(value)];
  if (ArrayBuffer.isView(value)) return [...new Uint8Array(value.buffer, value.byteOffset, value.byteLength)];
  return null;
}

/**
 * A connected socket.io-client socket that logs every event it receives in
 * `socket.log` ([event, ...args]), answers "ask" acks with {id, n, buf}, and
 * records its disconnect reason.
 */
function connectClient(url, opts = {}) {
  const socket = ioc(url, { forceNew: true, reconnection: false, timeout: 5000, ...opts });
  socket.log = [];
  socket.disconnectReason = null;
  socket.onAny((event, ...args) => socket.log.push([event, ...args.filter((a) => typeof a !== "function")]));
  socket.on("ask", (n, cb) => cb({ id: socket.id, n, buf: Buffer.from([n]) }));
  socket.on("disconnect", (reason) => (socket.disconnectReason = reason));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`connecting to ${url} timed out`));
    }, 8000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

/** Arguments of every `event` the client received. */
function received(socket, event) {
  return socket.log.filter((e) => e[0] === event).map((e) => e.slice(1));
}

/** Runs an async function body in the worker behind `ctl` (a /ctl client). */
async function run(ctl, code, timeout = 8000) {
  const res = await ctl.timeout(timeout).emitWithAck("run", code);
  if (!res.ok) throw new Error(`in worker: ${res.error}`);
  return res.value;
}

class Cluster {
  constructor(cfg) {
    this.cfg = cfg;
    this.output = "";
    this.events = [];
    this.exits = [];
    this.clients = new Set();
    this._replies = new Map();
    this._seq = 0;
    this._waiters = new Set();
    this.child = fork(PRIMARY, [], {
      env: { ...process.env, IPC_FIXTURE: JSON.stringify(cfg) },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const onData = (chunk) => {
      this.output += chunk;
      if (this.output.length > 400_000) this.output = this.output.slice(-200_000);
      if (process.env.IPC_TEST_VERBOSE) process.stderr.write(chunk);
    };
    this.child.stdout.setEncoding("utf8").on("data", onData);
    this.child.stderr.setEncoding("utf8").on("data", onData);
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    this.child.on("message", (m) => {
      if (m.reply !== undefined) {
        const r = this._replies.get(m.reply);
        this._replies.delete(m.reply);
        if (r) r(m.value);
        return;
      }
      if (m.event === "exit") this.exits.push(m);
      this.events.push(m);
      for (const w of this._waiters) w();
    });
  }

  /** Resolves with {workers, stickyPort} once every worker listens. */
  ready(timeout = 20_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cluster not ready in ${timeout} ms:\n${this.output}`)), timeout);
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`fixture primary exited (${code}, ${signal}) before ready:\n${this.output}`));
      });
      this.child.on("message", (m) => {
        if (m.event !== "ready") return;
        clearTimeout(timer);
        this.workers = m.workers;
        this.stickyPort = m.stickyPort;
        resolve(m);
      });
    });
  }

  /** Next event (worker message forwarded by the primary) matching `pred`. */
  waitEvent(pred, timeout = 10_000) {
    return new Promise((resolve, reject) => {
      let waiter;
      const timer = setTimeout(() => {
        this._waiters.delete(waiter);
        reject(new Error(`no matching event in ${timeout} ms; got ${JSON.stringify(this.events)}\n${this.output}`));
      }, timeout);
      waiter = () => {
        const ev = this.events.find(pred);
        if (!ev) return;
        this._waiters.delete(waiter);
        clearTimeout(timer);
        resolve(ev);
      };
      this._waiters.add(waiter);
      waiter();
    });
  }

  /** Sends a command to the fixture primary and resolves with its reply. */
  command(cmd, timeout = 5000) {
    const id = ++this._seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${cmd.cmd}`)), timeout);
      this._replies.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.child.send({ ...cmd, id });
    });
  }

  /** A tracked client (closed by stop()). */
  async connect(url, opts) {
    const socket = await connectClient(url, opts);
    this.clients.add(socket);
    return socket;
  }

  url(worker, nsp = "") {
    return `http://127.0.0.1:${worker.port}${nsp}`;
  }

  async stop() {
    for (const c of this.clients) c.close();
    this.clients.clear();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** Starts a fixture cluster and waits until all its workers are ready. */
async function startCluster(cfg) {
  const cluster = new Cluster(cfg);
  try {
    await cluster.ready();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** Waits until every /ctl client's worker counts `n` servers in namespace `nsp`. */
async function waitServerCount(ctls, n, nsp = "/", timeout = 8000) {
  for (const ctl of ctls) {
    await waitFor(async () => (await run(ctl, `return await io.of(${JSON.stringify(nsp)}).adapter.serverCount();`)) === n, {
      timeout,
      message: `serverCount() === ${n}`,
    });
  }
}

module.exports = { Cluster, startCluster, connectClient, received, run, waitFor, waitServerCount, bytesOf, delay };
