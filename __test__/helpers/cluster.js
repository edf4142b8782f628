"use strict";
// Test-process side of the integration harness.
//
//   const c = await startCluster({ workers: 3 });       // primary + 3 workers, meshed
//   const clients = await c.connectAll();                // one socket.io-client per worker
//   await c.exec(0, ({ io }) => io.emit("hello"));       // runs in worker 0
//   await c.close();
//
// Every cluster runs under its own primary process (fixtures/primary.js),
// forked from the test process; the workers run __test__/fixtures/worker.js (or
// `workerScript`). The test process talks to the workers through the primary
// over the cluster IPC channel, and to the Socket.IO servers through real
// socket.io-client connections (WebSocket only, loopback, ports chosen by the
// OS). Everything started here is killed by close(), and the primary kills
// its workers and exits by itself if this process disappears.

const { fork } = require("node:child_process");
const path = require("node:path");
const { io: ioc } = require("socket.io-client");
const { modulePath, isStock } = require("./adapter-module");
const { toWire, fromWire } = require("./wire");

const PRIMARY = path.join(__dirname, "..", "fixtures", "primary.js");
const DEFAULT_WORKER = path.join(__dirname, "..", "fixtures", "worker.js");

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `what` if `promise` does not settle within `ms`. */
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves with the argument list of the next `event` on `emitter`; rejects after `timeout` ms. */
function nextEvent(emitter, event, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no "${event}" event within ${timeout} ms`));
    }, timeout);
    function listener(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, listener);
  });
}

/**
 * Records every `event` on each of `emitters`; `.calls[i]` holds the argument
 * lists received by emitter i. Used to assert that something did NOT arrive.
 */
function record(emitters, event) {
  const calls = emitters.map(() => []);
  emitters.forEach((e, i) => e.on(event, (...args) => calls[i].push(args)));
  return { calls };
}

/** Polls `predicate` until truthy; rejects after `timeout` ms. */
async function waitFor(predicate, timeout = 3000, what = "condition") {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(10);
  }
}

class Cluster {
  constructor(child, cfg) {
    this.child = child;
    this.cfg = cfg;
    this.isStock = cfg.stock;
    /** Per worker index: { index, port, pid, transport, exit } */
    this.workers = [];
    this.clients = [];
    this._nextId = 1;
    this._replies = new Map();
    this._waiters = new Set();
    this._events = [];
    this._output = [];
    this._closed = false;
    this.primaryExit = null;
    this._primaryExited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.primaryExit = { code, signal };
        for (const [, r] of this._replies) r.reject(new Error(`primary exited (code ${code}, signal ${signal})`));
        this._replies.clear();
        resolve(this.primaryExit);
        this._notify();
      });
    });
    const capture = (chunk) => {
      this._output.push(chunk.toString());
      if (this._output.length > 400) this._output.splice(0, 100);
      if (process.env.HARNESS_VERBOSE) process.stderr.write(chunk);
    };
    child.stdout.on("data", capture);
    child.stderr.on("data", capture);
    child.on("message", (msg) => this._onMessage(msg));
  }

  /** Last lines the primary and the workers wrote on stdout/stderr. */
  output() {
    return this._output.join("").split("\n").slice(-60).join("\n");
  }

  _onMessage(msg) {
    if (!msg || typeof msg.cmd !== "string") return;
    switch (msg.cmd) {
      case "harness:reply": {
        const r = this._replies.get(msg.id);
        if (!r) return;
        this._replies.delete(msg.id);
        if (msg.ok) r.resolve(fromWire(msg.result));
        else {
          const err = new Error(msg.error.message);
          err.name = msg.error.name || "Error";
          err.workerStack = msg.error.stack;
          r.reject(err);
        }
        return;
      }
      case "harness:ready":
        this.workers[msg.worker] = {
          index: msg.worker,
          port: msg.port,
          pid: msg.pid,
          transport: msg.transport,
          exit: null,
        };
        break;
      case "harness:exit":
        this.workers[msg.worker] = { ...(this.workers[msg.worker] || { index: msg.worker }), exit: msg };
        break;
      case "harness:event":
        this._events.push({ worker: msg.worker, name: msg.name, data: fromWire(msg.data) });
        break;
      default:
        return;
    }
    this._notify();
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  /** Resolves once `predicate()` is truthy (checked on every message from the primary). */
  _until(predicate, timeout, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let value;
        try {
          value = predicate();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (value) {
          done();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}\n--- cluster output ---\n${this.output()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(check);
      };
      this._waiters.add(check);
      check();
    });
  }

  _request(msg, timeout, what) {
    if (this.primaryExit) return Promise.reject(new Error(`primary is gone (${JSON.stringify(this.primaryExit)})`));
    const id = this._nextId++;
    return withTimeout(
      new Promise((resolve, reject) => {
        this._replies.set(id, { resolve, reject });
        this.child.send({ ...msg, id });
      }),
      timeout,
      `${what}\n--- cluster output ---\n${this.output()}`,
    ).finally(() => this._replies.delete(id));
  }

  /**
   * Runs `fn(context, arg)` in worker `index` and resolves with its result
   * (Buffers, Sets, Maps and Errors survive the trip). `fn` is sent as source
   * text, so it must not close over variables of the test file; pass data in
   * `arg`. Context: { io, httpServer, state, index, cluster, adapterModule,
   * warnings, require, sleep, waitFor, nextEvent, once, socketOf, notify }.
   */
  exec(index, fn, arg, { timeout = 5000 } = {}) {
    return this._request(
      { cmd: "harness:exec", worker: index, fn: fn.toString(), arg: toWire(arg) },
      timeout,
      `exec on worker ${index}: ${fn.toString().slice(0, 120)}`,
    );
  }

  /** exec() on every worker that is still running, in parallel. */
  execAll(fn, arg, opts) {
    return Promise.all(this.live().map((i) => this.exec(i, fn, arg, opts)));
  }

  /** Runs `fn({ cluster, adapterModule, primaryHandle, workers, cfg, require }, arg)` in the primary. */
  primaryExec(fn, arg, { timeout = 5000 } = {}) {
    return this._request({ cmd: "harness:primary-exec", fn: fn.toString(), arg: toWire(arg) }, timeout, "primary exec");
  }

  /** Indexes of the workers that are ready and have not exited. */
  live() {
    return this.workers.filter((w) => w && w.port && !w.exit).map((w) => w.index);
  }

  /** Sends `signal` to worker `index`; resolves with { sentAt, exit } once it exited. */
  async kill(index, signal = "SIGKILL", { timeout = 5000 } = {}) {
    const { t } = await this._request({ cmd: "harness:kill", worker: index, signal }, timeout, `kill worker ${index}`);
    const exit = await this.waitExit(index, timeout);
    return { sentAt: t, exit };
  }

  /** Resolves with the exit report { code, signal, t } of worker `index`. */
  waitExit(index, timeout = 5000) {
    return this._until(() => this.workers[index] && this.workers[index].exit, timeout, `exit of worker ${index}`);
  }

  /** Forks one more worker and resolves with its index once it listens. */
  async fork(env = {}, { timeout = 15000 } = {}) {
    const index = await this._request({ cmd: "harness:fork", env }, timeout, "fork");
    await this._until(() => this.workers[index] && this.workers[index].port, timeout, `worker ${index} ready`);
    return index;
  }

  /** Resolves with the data of the next event `name` notify()-ed by worker `index`. */
  async workerEvent(index, name, timeout = 3000) {
    const found = await this._until(
      () => {
        const at = this._events.findIndex((e) => e.worker === index && e.name === name);
        return at >= 0 ? this._events.splice(at, 1)[0] : null;
      },
      timeout,
      `event "${name}" from worker ${index}`,
    );
    return found.data;
  }

  /** Waits until serverCount() of `nsp` equals `count` on each of `workers`. */
  async waitForServerCount(count, { nsp = "/", workers = this.live(), timeout = 5000 } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      last = await Promise.all(
        workers.map((i) => this.exec(i, ({ io }, name) => io.of(name).adapter.serverCount(), nsp)),
      );
      if (last.every((n) => n === count)) return last;
      if (Date.now() > deadline) {
        throw new Error(`serverCount() of ${nsp} on workers ${workers} is ${last}, expected ${count} after ${timeout} ms`);
      }
      await sleep(20);
    }
  }

  /**
   * Connects a socket.io-client to worker `index` (namespace `nsp`) and
   * resolves once it is connected. Reconnection is off: a dropped
   * connection stays dropped.
   */
  async connect(index, { nsp = "/", timeout = 5000, ...opts } = {}) {
    const w = this.workers[index];
    if (!w || !w.port) throw new Error(`worker ${index} is not ready`);
    const socket = ioc(`http://127.0.0.1:${w.port}${nsp}`, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      ...opts,
    });
    this.clients.push(socket);
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      }),
      timeout,
      `client connect to worker ${index} ${nsp}`,
    );
    return socket;
  }

  /** One connected client per running worker, in worker order. */
  connectAll(opts) {
    return Promise.all(this.live().map((i) => this.connect(i, opts)));
  }

  /** Disconnects the clients, stops the workers and the primary (bounded). */
  async close() {
    if (this._closed) return;
    this._closed = true;
    for (const socket of this.clients) socket.disconnect();
    if (!this.primaryExit) {
      if (this.child.connected) this.child.send({ cmd: "harness:shutdown" });
      try {
        await withTimeout(this._primaryExited, 3000, "primary exit");
      } catch {
        this.child.kill("SIGKILL");
      }
    }
    // Belt and braces: no worker may outlive the test file.
    for (const w of this.workers) {
      if (w && w.pid && !w.exit) {
        try {
          process.kill(w.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    await withTimeout(this._primaryExited, 3000, "primary exit after SIGKILL").catch(() => {});
  }
}

/**
 * Starts a primary process and its workers.
 *
 * options:
 *   workers         number of workers (default 3)
 *   workerScript    worker script (default __test__/fixtures/worker.js)
 *   adapterOpts     options passed to createAdapter() in every worker
 *   primaryOpts     options passed to setupPrimary() (hub limits)
 *   serverOpts      options of `new Server()` in every worker (`parserModule`: path of a parser module)
 *   env             extra environment of the workers
 *   primaryEnv      extra environment of the primary (its workers inherit it)
 *   forkBeforeSetup fork the workers before calling setupPrimary() (tutorial order)
 *   serialization   cluster IPC serialization; default "advanced" for the stock
 *                   package (it needs it for Buffers), Node's default (json) for ours
 *   mesh            wait until serverCount() of "/" equals `workers` everywhere (default true)
 *   timeout         start-up bound in ms (default 20000)
 */
async function startCluster(options = {}) {
  const cfg = {
    adapterModule: modulePath,
    stock: isStock,
    workers: options.workers ?? 3,
    workerScript: options.workerScript || DEFAULT_WORKER,
    adapterOpts: toWire(options.adapterOpts || {}),
    primaryOpts: options.primaryOpts,
    serverOpts: options.serverOpts || {},
    workerEnv: options.env || {},
    forkBeforeSetup: !!options.forkBeforeSetup,
    serialization: options.serialization || null,
    maxLifetime: options.maxLifetime || 120_000,
  };
  const child = fork(PRIMARY, [], {
    env: { ...process.env, ...options.primaryEnv, HARNESS_CONFIG: JSON.stringify(cfg) },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const cluster = new Cluster(child, cfg);
  const timeout = options.timeout || 20000;
  try {
    await cluster._until(
      () => {
        if (cluster.primaryExit) throw new Error(`primary exited during start-up:\n${cluster.output()}`);
        const exited = cluster.workers.find((w) => w && w.exit);
        if (exited) throw new Error(`worker ${exited.index} exited during start-up:\n${cluster.output()}`);
        return cluster.live().length === cfg.workers;
      },
      timeout,
      `${cfg.workers} workers ready`,
    );
    if (options.mesh !== false && cfg.workers > 1) await cluster.waitForServerCount(cfg.workers, { timeout });
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** startCluster() whose close() is registered on the node:test context `t`. */
async function clusterFor(t, options) {
  const cluster = await startCluster(options);
  t.after(() => cluster.close());
  return cluster;
}

module.exports = { startCluster, clusterFor, Cluster, sleep, withTimeout, nextEvent, record, waitFor, isStock };
