"use strict";
// A throw-away redis-server for the Redis bridge suites (and bench/redis.js).
//
//   const redis = await startRedis();            // free loopback port, no persistence
//   redis.url                                     // "redis://127.0.0.1:<port>"
//   redis.pid                                     // redis-server's pid (setpriv exec()s it)
//   await redis.cli("PUBSUB", "NUMSUB", "ch");    // one command, one short-lived connection
//   await redis.kill();                           // SIGKILL (clients see the connection drop)
//   await redis.restart();                        // same port again, resolves once it answers PING
//   await redis.stop();
//
// The server is a child of the test process: stop() ends it, the process's
// "exit" handler SIGKILLs it, and on Linux it is spawned under
// `setpriv --pdeathsig KILL` so that it dies with the test process even when
// that one is SIGKILLed.

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const { freePort } = require("./free-port");

const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => fs.existsSync(p));

const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true if something on `port` answers `PING` with `+PONG`. */
function ping(port, timeout = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let data = "";
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      data += chunk;
      if (data.includes("\r\n")) done(data.startsWith("+PONG"));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

/** Encodes one command as a RESP array of bulk strings. */
function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, "\r\n");
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

/**
 * Parses one RESP2 reply at `buf[at]`; returns [value, next] or null when
 * incomplete. Bulk strings are returned as strings (utf8).
 */
function parse(buf, at = 0) {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return [line, next];
    case "-": {
      const err = new Error(line);
      err.redis = true;
      return [err, next];
    }
    case ":":
      return [Number(line), next];
    case "$": {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return null;
      return [buf.toString("utf8", next, next + len), next + len + 2];
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, pos);
        if (!r) return null;
        out.push(r[0]);
        pos = r[1];
      }
      return [out, pos];
    }
    default:
      throw new Error(`unexpected RESP type byte ${buf[at]}`);
  }
}

/**
 * Runs one command on a fresh connection and resolves with its reply
 * (rejects with the server's error reply, or if nothing answers within
 * `timeout` ms). The connection appears in CLIENT LIST while the command runs.
 */
function command(port, args, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(new Error(`redis ${args[0]}: no reply within ${timeout} ms`)), timeout);
    socket.on("connect", () => socket.write(encode(args)));
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let r;
      try {
        r = parse(buf);
      } catch (err) {
        done(err);
        return;
      }
      if (!r) return;
      if (r[0] instanceof Error) done(r[0]);
      else done(null, r[0]);
    });
    socket.on("error", (err) => done(err));
    socket.on("close", () => done(new Error(`redis ${args[0]}: connection closed before the reply`)));
  });
}

/**
 * Starts redis-server on `port` (default: a free one) and resolves once it
 * answers PING. `t` (a node:test context) registers stop() with t.after().
 */
async function startRedis({ port, t, timeout = 10000 } = {}) {
  port = port ?? (await freePort());
  let child = null;
  let exited = null;
  const output = [];

  function spawnServer() {
    const args = [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
      "--protected-mode", "no",
      "--daemonize", "no",
      "--loglevel", "warning",
      "--logfile", "",
    ];
    const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", REDIS_SERVER, ...args]] : [REDIS_SERVER, args];
    const c = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const capture = (d) => {
      output.push(d.toString());
      if (output.length > 200) output.splice(0, 100);
    };
    c.stdout.on("data", capture);
    c.stderr.on("data", capture);
    live.add(c);
    exited = new Promise((resolve) => {
      c.on("exit", (code, signal) => {
        live.delete(c);
        resolve({ code, signal });
      });
      c.on("error", (err) => {
        live.delete(c);
        output.push(String(err));
        resolve({ code: null, signal: null, error: err });
      });
    });
    child = c;
    return c;
  }

  async function waitReady() {
    const c = child;
    const deadline = Date.now() + timeout;
    let gone = null;
    exited.then((e) => (gone = e));
    for (;;) {
      if (gone && child === c) {
        throw new Error(`redis-server on port ${port} exited during start-up (${JSON.stringify(gone)}):\n${output.join("")}`);
      }
      if (await ping(port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not answering after ${timeout} ms:\n${output.join("")}`);
      await sleep(20);
    }
  }

  async function halt(signal) {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = exited;
    c.kill(signal);
    const t0 = Date.now();
    const res = await Promise.race([gone, sleep(3000).then(() => null)]);
    if (!res) {
      c.kill("SIGKILL");
      await gone;
    }
    // The port is free once nothing answers any more.
    while (Date.now() - t0 < 3000 && (await ping(port, 200))) await sleep(20);
  }

  spawnServer();
  await waitReady().catch(async (err) => {
    await halt("SIGKILL");
    throw err;
  });

  const server = {
    port,
    url: `redis://127.0.0.1:${port}`,
    /** Runs one command (`cli("PUBSUB", "NUMSUB", "x")`) and resolves with its reply. */
    cli: (...args) => command(port, args.flat()),
    /** Publishes `message` (string or Buffer) on `channel`; resolves with the receiver count. */
    publish: (channel, message) => command(port, ["PUBLISH", channel, message]),
    /** Parsed CLIENT LIST: one object per connection ({ id, addr, name, cmd, ... }). */
    async clients() {
      const text = await command(port, ["CLIENT", "LIST"]);
      return text
        .split("\n")
        .filter(Boolean)
        .map((line) => Object.fromEntries(line.trim().split(" ").map((kv) => {
          const i = kv.indexOf("=");
          return [kv.slice(0, i), kv.slice(i + 1)];
        })));
    },
    /** INFO <section> as an object of strings. */
    async info(section = "stats") {
      const text = await command(port, ["INFO", section]);
      const out = {};
      for (const line of text.split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0 && !line.startsWith("#")) out[line.slice(0, i)] = line.slice(i + 1);
      }
      return out;
    },
    /** The running redis-server's pid (setpriv exec()s redis-server: same pid). */
    get pid() {
      return child ? child.pid : null;
    },
    ping: () => ping(port),
    isRunning: () => !!child && child.exitCode === null && child.signalCode === null,
    output: () => output.join(""),
    /** Graceful stop (SIGTERM, SIGKILL after 3 s). */
    stop: () => halt("SIGTERM"),
    /** SIGKILL: clients see their connections reset, nothing is said to them. */
    kill: () => halt("SIGKILL"),
    /** Starts the server again on the same port; resolves once it answers PING. */
    async restart() {
      await halt("SIGKILL");
      spawnServer();
      await waitReady();
    },
  };
  if (t) t.after(() => server.stop());
  return server;
}

module.exports = { startRedis, redisCommand: command, ping, parseResp: parse, encodeResp: encode, REDIS_SERVER };
