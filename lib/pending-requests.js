"use strict";
// The JS half of the worker's cluster-wide requests: their ids and callbacks.
// The Rust half (who must still answer, deadlines) lives in the hub.

// JS-side backstop after the hub's own deadline, in case the hub stalls: a
// request always settles, and its ref'd timer keeps the process alive meanwhile.
const BACKSTOP_MS = 2_000;
const MAX_REQ = 0xffff_ffff;
// Handler calls after which a request is over.
const FINAL = ["done", "timedOut", "count", "restored", "down"];

class PendingRequests {
  constructor() {
    this.handlers = new Map(); // req id → handler
    this.lastReq = 0;
  }

  get size() {
    return this.handlers.size;
  }

  /**
   * Registers `handler` (methods accepted(n), reply(from, payload, last),
   * departed(node), done(), timedOut(missing, pids), count(n),
   * restored(outcome, payload), down(reason), each optional) for a request
   * the hub settles within `timeoutMs`. Returns the request's id and a
   * function that forgets it; the request is forgotten too once a final
   * call (done, timedOut, count, restored, down) is made.
   */
  open(timeoutMs, handler) {
    const req = this.allocReq();
    const entry = { ...handler };
    const backstop = setTimeout(() => {
      if (this.handlers.get(req) === entry) entry.down("no answer from the hub");
    }, timeoutMs + BACKSTOP_MS);
    const forget = () => {
      clearTimeout(backstop);
      if (this.handlers.get(req) === entry) this.handlers.delete(req);
    };
    for (const name of FINAL) {
      const fn = handler[name];
      entry[name] = (arg, arg2) => {
        forget();
        if (fn) fn(arg, arg2);
      };
    }
    this.handlers.set(req, entry);
    return { req, forget };
  }

  /** Calls handler method `name` of request `req`, if it is still pending. */
  call(req, name, arg, arg2, arg3) {
    const h = this.handlers.get(req);
    if (h && h[name]) h[name](arg, arg2, arg3);
  }

  /** Fails every pending request with `reason`. */
  failAll(reason) {
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of handlers) h.down(reason);
  }

  allocReq() {
    do {
      this.lastReq = this.lastReq >= MAX_REQ ? 1 : this.lastReq + 1;
    } while (this.handlers.has(this.lastReq));
    return this.lastReq;
  }
}

module.exports = { PendingRequests };
