"use strict";
// Fixture worker for the many-namespaces check: OUR adapter on a Server with
// "/" and 12 more namespaces, attached to an HTTP server that never listens. It reports to the test (through the
// primary) the number of process "message" listeners before the adapter,
// after creating the namespaces and after io.close(), and every warning.
// Commands arrive from the primary as {nsCmd: ...}.

const cluster = require("node:cluster");
const { Server } = require("socket.io");
const { createAdapter } = require("../..");

const warnings = [];
process.on("warning", (w) => warnings.push(`${w.name}: ${w.message}`));

const NAMES = ["/", ...Array.from({ length: 12 }, (_, i) => `/ns${i}`)];
let io = null;

// The fixture's own command channel: registered before the baseline is taken.
process.on("message", async (m) => {
  if (!m || typeof m !== "object" || !m.nsCmd) return;
  try {
    if (m.nsCmd === "counts") {
      const counts = {};
      for (const name of NAMES) counts[name] = await io.of(name).adapter.serverCount();
      report("counts", { counts });
    } else if (m.nsCmd === "acks") {
      const acks = {};
      for (const name of NAMES) acks[name] = await io.of(name).serverSideEmitWithAck("q", name);
      report("acks", { acks });
    } else if (m.nsCmd === "close") {
      io.close();
      await new Promise((r) => setImmediate(r));
      report("closed", { afterClose: process.listenerCount("message"), warnings });
    }
  } catch (err) {
    report("error", { error: String(err && err.stack) });
  }
});

function report(what, data) {
  process.send({ fixture: what, ...data });
}

const baseline = process.listenerCount("message");
io = new Server(require("node:http").createServer());
io.adapter(createAdapter());
for (const name of NAMES) io.of(name).on("q", (arg, cb) => cb({ pid: process.pid, nsp: name, arg }));
const afterCreate = process.listenerCount("message");

setImmediate(() => {
  process.send({
    fixture: "ready",
    port: null,
    kind: "ours",
    transport: io.of("/").adapter.transport,
    transports: NAMES.map((n) => io.of(n).adapter.transport),
    baseline,
    afterCreate,
    maxListeners: process.getMaxListeners(),
    warnings,
    workerId: cluster.worker.id,
  });
});
