"use strict";
// Cluster worker of the integration suites. It runs a Socket.IO server with
// the adapter under test on a free loopback port, reports that port to the
// primary, and then executes what the test process asks over the cluster IPC
// channel (`{ cmd: "harness:exec", fn, arg }`): `fn` is the source of a
// function called with a context ({ io, state, ... }) and `arg`; its result
// (or error) goes back as `{ cmd: "harness:reply" }`.
//
// The harness's messages use `cmd: "harness:*"` and never the adapter's
// `source: "_sio_adapter"` marker.

const cluster = require("node:cluster");
const http = require("node:http");
const { once } = require("node:events");
const { Server } = require("socket.io");
const { toWire, fromWire, errorToWire } = require("./helpers/wire");

const warnings = [];
process.on("warning", (w) => warnings.push({ name: w.name, message: w.message }));

const adapterModule = require(process.env.ADAPTER_MODULE);
const adapterOpts = fromWire(JSON.parse(process.env.ADAPTER_OPTS || "{}"));
const serverOpts = JSON.parse(process.env.SERVER_OPTS || "{}");
// A parser cannot travel as JSON: tests name its module instead.
if (serverOpts.parserModule) {
  serverOpts.parser = require(serverOpts.parserModule);
  delete serverOpts.parserModule;
}
const index = Number(process.env.WORKER_INDEX);

const httpServer = http.createServer();
const io = new Server(httpServer, serverOpts);
io.adapter(adapterModule.createAdapter(adapterOpts));
// A broadcast before the adapter's connection is up (tests of what is queued
// meanwhile); what it throws is kept for the test to read.
let earlyEmitError = null;
if (process.env.EMIT_AT_START) {
  try {
    io.emit("early", "x".repeat(Number(process.env.EMIT_AT_START)));
  } catch (err) {
    earlyEmitError = err.code || err.message;
  }
}

const state = { earlyEmitError };

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` until it is truthy; rejects after `timeout` ms. */
async function waitFor(predicate, timeout = 3000, what = "condition") {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`worker ${index}: timed out after ${timeout} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves with the arguments of the next `event` on `emitter`; rejects after `timeout` ms. */
function nextEvent(emitter, event, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`worker ${index}: no "${event}" within ${timeout} ms`));
    }, timeout);
    function listener(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, listener);
  });
}

/** The server-side socket with this id (client and server ids are equal in Socket.IO 4). */
function socketOf(id, nsp = "/") {
  const socket = io.of(nsp).sockets.get(id);
  if (!socket) throw new Error(`worker ${index}: no socket ${id} in ${nsp}`);
  return socket;
}

/** Sends an unsolicited event to the test process (through the primary). */
function notify(name, data) {
  process.send({ cmd: "harness:event", name, data: toWire(data) });
}

const context = {
  io,
  httpServer,
  state,
  index,
  cluster,
  adapterModule,
  adapterOpts,
  warnings,
  require,
  sleep,
  waitFor,
  nextEvent,
  once,
  socketOf,
  notify,
};

process.on("message", async (msg) => {
  if (!msg || msg.cmd !== "harness:exec") return;
  let reply;
  try {
    const fn = (0, eval)(`(${msg.fn})`);
    const result = await fn(context, fromWire(msg.arg));
    reply = { cmd: "harness:reply", id: msg.id, ok: true, result: toWire(result) };
  } catch (err) {
    reply = { cmd: "harness:reply", id: msg.id, ok: false, error: errorToWire(err) };
  }
  if (process.connected) process.send(reply);
});

// exclusive: a cluster worker's listen(0) otherwise shares one port chosen by
// the primary (connections round-robin across workers); each worker needs its own.
httpServer.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
  process.send({
    cmd: "harness:ready",
    port: httpServer.address().port,
    pid: process.pid,
    transport: io.of("/").adapter.transport ?? null,
  });
});
