"use strict";
// Lifecycle of one measured cluster: spawn the primary (which forks the
// workers), fork the client processes, connect the sockets, and tear it all
// down again. Every pid ever started is tracked so that leftovers can be
// killed at the end or on SIGINT.

const path = require("node:path");
const { spawn, fork } = require("node:child_process");
const { isAlive } = require("./proc");

const started = new Set(); // every pid we (or our primary) started

function killLeftovers() {
  let n = 0;
  for (const pid of started) {
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
        n++;
      } catch {}
    }
  }
  started.clear();
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let tokenSeq = 0;

/**
 * Starts primary + W workers with `adapterPath`, `clientProcs` client processes,
 * and `clientsPerWorker` sockets per worker. Socket g (global index) goes to
 * worker g % W and room g % rooms, and to client process g % clientProcs, so
 * rooms, workers and client processes are all evenly mixed.
 */
async function startCluster(ctrl, o) {
  const token = `${process.pid}-${++tokenSeq}`;
  const env = {
    ...process.env,
    BENCH_CTRL_PORT: String(o.ctrlPort),
    BENCH_TOKEN: token,
    BENCH_MAX_LIFE_MS: String(o.maxLifeMs),
  };
  const procs = []; // ChildProcess objects to reap
  const cl = { token, W: o.W, primary: null, workers: [], workerPids: [], clients: [], layout: [], procs };
  try {
    const primary = spawn(process.execPath, [path.join(__dirname, "primary.js")], {
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...env,
        BENCH_ADAPTER_PATH: o.adapterPath,
        BENCH_WORKERS: String(o.W),
        BENCH_SERIALIZATION: o.serialization,
      },
    });
    procs.push(primary);
    started.add(primary.pid);
    const pp = await ctrl.waitFor(`${token}/primary`, 20_000);
    cl.workerPids = pp.hello.workers.map((w) => w.pid);
    for (const pid of cl.workerPids) started.add(pid);
    cl.primary = { pid: primary.pid, peer: pp };
    for (let i = 0; i < o.W; i++) {
      const wp = await ctrl.waitFor(`${token}/worker${i}`, 30_000);
      cl.workers.push({ idx: i, pid: wp.hello.pid, port: wp.hello.port, peer: wp });
    }

    const nSockets = o.W * o.clientsPerWorker;
    const nProcs = Math.min(o.clientProcs, nSockets);
    for (let c = 0; c < nProcs; c++) {
      const child = fork(path.join(__dirname, "client.js"), [], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        env: { ...env, BENCH_CLIENT_IDX: String(c) },
      });
      procs.push(child);
      started.add(child.pid);
    }
    for (let c = 0; c < nProcs; c++) {
      const cp = await ctrl.waitFor(`${token}/client${c}`, 20_000);
      cl.clients.push({ idx: c, pid: cp.hello.pid, peer: cp });
    }
    const targets = cl.clients.map(() => []);
    for (let g = 0; g < nSockets; g++) {
      const t = { w: g % o.W, room: g % o.rooms, client: g % nProcs };
      cl.layout.push(t);
      targets[t.client].push({ w: t.w, room: t.room, port: cl.workers[t.w].port });
    }
    await Promise.all(cl.clients.map((c, i) => c.peer.call("connect", { targets: targets[i], timeoutMs: 20_000 }, 25_000)));
    return cl;
  } catch (e) {
    await stopCluster(ctrl, cl);
    throw e;
  }
}

/** Asks everything to exit, waits briefly, then SIGKILLs whatever is left. */
async function stopCluster(ctrl, cl) {
  for (const c of cl.clients) c.peer.send("exit");
  if (cl.primary) cl.primary.peer.send("exit");
  const pids = [cl.primary && cl.primary.pid, ...cl.workerPids, ...cl.clients.map((c) => c.pid), ...cl.procs.map((p) => p.pid)].filter(Boolean);
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && pids.some(isAlive)) await sleep(50);
  for (const pid of pids) {
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    started.delete(pid);
  }
  ctrl.forget(cl.token);
}

module.exports = { startCluster, stopCluster, killLeftovers, sleep };
