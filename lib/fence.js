"use strict";
// Keeps the primary's own worker.send() in order with the hub's traffic.
//
// With the stock adapter a worker receives everything through its one IPC
// pipe, relayed by the primary's JS thread, so it always handles what the
// primary sent it before any adapter message that this caused. Over the hub
// (see "Order with the primary" in src/router.rs):
// - the first send of a stretch of the primary's code asks the hub to hold
//   (park what workers send), and the end of the stretch releases it;
// - at the release, every worker sent to gets a fence through its IPC pipe,
//   behind the stretch's messages; it acknowledges the fence to the hub once
//   it has handled them, and until then the hub keeps its frames back.

const cluster = require("node:cluster");

// Node delivers messages whose `cmd` starts with "NODE_" as 'internalMessage'
// events, never to the application's 'message' listeners.
const FENCE = "NODE_SOCKET_IO_CLUSTER_RS_FENCE";
const ORIGINAL_SEND = Symbol("socket.io-cluster-rs: unwrapped send");

function isInternal(message) {
  return message !== null && typeof message === "object" && typeof message.cmd === "string" && message.cmd.startsWith("NODE_");
}

/** True for the fence message a worker acknowledges to the hub. */
function isFence(message) {
  return message !== null && typeof message === "object" && message.cmd === FENCE && Number.isSafeInteger(message.fence);
}

// A worker that exits mid-send makes send() report ERR_IPC_CHANNEL_CLOSED;
// that is expected during shutdown and must not crash the primary.
function ignoreError() {}

/** Sends `message` to `worker` without ordering it (the stock relay's own traffic). */
function sendUnordered(worker, message) {
  const proc = worker.process;
  const send = (proc && proc[ORIGINAL_SEND]) || worker.send.bind(worker);
  return send.call(proc, message, ignoreError);
}

// The order in force (one hub per primary at a time); the wrappers of
// workers' send() stay in place and consult it.
let current = null;

/** Makes `worker.send()` (which is `worker.process.send()`) tell the current order first. */
function wrap(worker) {
  const proc = worker.process;
  if (!proc || typeof proc.send !== "function" || proc[ORIGINAL_SEND]) return;
  const original = proc.send;
  proc[ORIGINAL_SEND] = original;
  proc.send = function send(message, ...rest) {
    // Before the write: a reaction to this message must find the hub holding.
    if (current !== null && !isInternal(message)) current.noteSend(worker);
    return original.call(this, message, ...rest);
  };
}

/** Orders every worker's sends against `hub` (a binding Hub) until close(). */
class SendOrder {
  constructor(hub) {
    if (current !== null) current.close();
    current = this;
    this.hub = hub;
    // Workers sent to in the current stretch of code; null outside one.
    this.stretch = null;
    this.release = () => this._release();
    for (const worker of Object.values(cluster.workers || {})) if (worker) wrap(worker);
    cluster.on("fork", wrap);
  }

  noteSend(worker) {
    if (this.stretch === null) {
      this.stretch = new Set();
      this.hub.hold();
      // The check phase of this loop iteration: after everything this
      // iteration runs, and before the primary reads any worker's answer
      // (which is what bounded the stock relay's order).
      setImmediate(this.release);
    }
    this.stretch.add(worker);
  }

  _release() {
    if (this.stretch === null) return;
    const workers = [...this.stretch];
    this.stretch = null;
    const fences = this.hub.release(workers.map((w) => (w.process && w.process.pid) || 0));
    workers.forEach((worker, i) => {
      if (fences[i] > 0) sendUnordered(worker, { cmd: FENCE, fence: fences[i] });
    });
  }

  /**
   * Releases the current stretch and stops ordering. The wrappers stay (a
   * later order uses them, and someone may have wrapped send() again on top
   * of ours); meanwhile they pass messages straight through.
   */
  close() {
    this._release();
    if (current === this) {
      current = null;
      cluster.off("fork", wrap);
    }
  }
}

module.exports = { SendOrder, isFence, sendUnordered };
