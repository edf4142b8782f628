"use strict";
// Control channel between the bench driver and every process it measures.
//
// Why TCP on loopback and not the cluster IPC channel: the adapters under test
// use that channel (the stock one for every broadcast), so bench commands on it
// would add traffic and latency to exactly what is being measured. Each process
// dials the driver at 127.0.0.1:BENCH_CTRL_PORT and speaks newline-delimited
// JSON: {hello}, then {id, cmd, args} requests from the driver and
// {id, ok, result | error} replies.

const net = require("node:net");
const { EventEmitter } = require("node:events");

/** Splits a byte stream into JSON lines. */
function lineReader(socket, onMessage) {
  let buf = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) onMessage(JSON.parse(line));
    }
  });
}

/** Driver side: one remote process. `call()` is a request with a deadline. */
class Peer {
  constructor(socket, hello) {
    this.socket = socket;
    this.hello = hello;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = false;
    socket.on("close", () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new Error(`${hello.role}${hello.idx ?? ""} closed its control connection`));
      this.pending.clear();
    });
  }
  onMessage(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`${this.hello.role}${this.hello.idx ?? ""}: ${msg.error}`));
  }
  call(cmd, args = {}, timeoutMs = 30_000) {
    if (this.closed) return Promise.reject(new Error(`${this.hello.role} is gone`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // Every wait is bounded: a hung process must not hang the whole bench.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.hello.role}${this.hello.idx ?? ""}: '${cmd}' timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(JSON.stringify({ id, cmd, args }) + "\n");
    });
  }
  /** Fire-and-forget (used for "exit": the process may be gone before it could reply). */
  send(cmd, args = {}) {
    if (!this.closed) this.socket.write(JSON.stringify({ id: 0, cmd, args }) + "\n");
  }
}

/** Driver side: accepts connections; hands out peers by `${token}/${role}${idx}`. */
class ControlServer extends EventEmitter {
  constructor() {
    super();
    this.peers = new Map();
    this.waiters = new Map();
    this.sockets = new Set();
    this.server = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => {});
      let peer = null;
      lineReader(socket, (msg) => {
        if (peer) return peer.onMessage(msg);
        if (!msg.hello) return socket.destroy();
        peer = new Peer(socket, msg.hello);
        const key = `${msg.hello.token}/${msg.hello.role}${msg.hello.idx ?? ""}`;
        this.peers.set(key, peer);
        this.emit("hello", msg.hello);
        const w = this.waiters.get(key);
        if (w) {
          this.waiters.delete(key);
          w(peer);
        }
      });
    });
  }
  listen() {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve(this.server.address().port)));
  }
  /** Resolves with the peer once it has said hello, or rejects after timeoutMs. */
  waitFor(key, timeoutMs) {
    const have = this.peers.get(key);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`no hello from ${key} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(key, (p) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
  }
  forget(token) {
    for (const k of this.peers.keys()) if (k.startsWith(token + "/")) this.peers.delete(k);
  }
  close() {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

/**
 * Process side. Dials the driver, says hello, and serves commands with `handlers`
 * (async functions). Losing the driver means the bench is over: exit at once so
 * no process outlives it. A hard lifetime cap backs that up.
 */
function serveControl(hello, handlers) {
  const port = Number(process.env.BENCH_CTRL_PORT);
  const maxLife = Number(process.env.BENCH_MAX_LIFE_MS || 600_000);
  setTimeout(() => process.exit(3), maxLife).unref();
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  socket.on("connect", () => {
    socket.write(JSON.stringify({ hello: { ...hello, token: process.env.BENCH_TOKEN, pid: process.pid } }) + "\n");
  });
  socket.on("error", () => process.exit(4));
  socket.on("close", () => process.exit(0));
  lineReader(socket, async (msg) => {
    const h = handlers[msg.cmd];
    let reply;
    try {
      if (!h) throw new Error(`unknown command ${msg.cmd}`);
      reply = { id: msg.id, ok: true, result: await h(msg.args || {}) };
    } catch (e) {
      reply = { id: msg.id, ok: false, error: String((e && e.stack) || e) };
    }
    if (msg.id && !socket.destroyed) socket.write(JSON.stringify(reply) + "\n");
  });
  return socket;
}

module.exports = { ControlServer, serveControl };
