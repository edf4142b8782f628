"use strict";
// Starts fixtures/sticky-cluster.js (a cluster behind one port, balanced by
// our setupPrimary({ sticky }) or by @socket.io/sticky) and talks to its
// primary. Everything it starts ends with stop(), or by itself when this
// process goes away.

const { fork } = require("node:child_process");
const http = require("node:http");
const path = require("node:path");

const FIXTURE = path.join(__dirname, "..", "fixtures", "sticky-cluster.js");

/**
 * config: { balancer: "rs" | "stock", workers, recovery, sticky }.
 * Resolves with { port, url, pids, ask(cmd, extra), stop() }.
 */
function startStickyCluster(config) {
  const child = fork(FIXTURE, {
    env: { ...process.env, STICKY_CONFIG: JSON.stringify(config) },
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  let nextId = 1;
  const waiting = new Map();
  child.on("message", (m) => {
    const w = waiting.get(m.id);
    if (w) {
      waiting.delete(m.id);
      w(m);
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster not ready in 20 s; stderr: ${stderr}`)), 20_000);
    child.once("exit", (code) => reject(new Error(`cluster exited with ${code}; stderr: ${stderr}`)));
    child.on("message", (m) => {
      if (!m.ready) return;
      clearTimeout(timer);
      resolve({
        port: m.ready,
        url: `http://127.0.0.1:${m.ready}`,
        pids: m.pids,
        stderr: () => stderr,
        ask(cmd, extra = {}) {
          const id = nextId++;
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no answer to ${cmd}`)), 20_000);
            waiting.set(id, (msg) => {
              clearTimeout(t);
              res(msg);
            });
            child.send({ cmd, id, ...extra });
          });
        },
        stop() {
          return new Promise((res) => {
            if (child.exitCode !== null || child.signalCode !== null) return res();
            child.once("exit", () => res());
            child.disconnect();
            setTimeout(() => child.kill("SIGKILL"), 3_000).unref();
          });
        },
      });
    });
  });
}

/**
 * One HTTP request: resolves with { status, body, reused } (`reused`: the
 * agent sent it on a connection an earlier request used).
 */
function httpRequest(url, { method = "GET", body, agent, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data, reused: req.reusedSocket }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("request timed out")));
    req.end(body);
  });
}

/** The pid a session id of ours carries (lib/sticky.js). */
function sidOwner(sid) {
  return parseInt(sid.slice(sid.lastIndexOf(".") + 1), 36);
}

module.exports = { startStickyCluster, httpRequest, sidOwner };
