"use strict";
// setupPrimary({ redis }) refuses what it cannot use with a TypeError that
// names the option, before anything starts.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const { setupPrimary } = require("..");

const bad = [
  [{ redis: "redis://127.0.0.1" }, /option "redis" must be an object/],
  [{ redis: {} }, /option "redis\.url" must be a redis:\/\//],
  [{ redis: { url: "http://127.0.0.1:6379" } }, /option "redis\.url" must be a redis:\/\//],
  [{ redis: { url: "rediss://127.0.0.1:6379" } }, /option "redis\.url" must be a redis:\/\/ .*TLS/],
  [{ redis: { url: "redis://127.0.0.1:notaport" } }, /option "redis\.url" is not usable/],
  [{ redis: { url: "redis://127.0.0.1", key: "" } }, /option "redis\.key" must be a non-empty string/],
  [{ redis: { url: "redis://127.0.0.1", key: 7 } }, /option "redis\.key"/],
  [{ redis: { url: "redis://127.0.0.1", requestsTimeout: 0 } }, /option "redis\.requestsTimeout" must be a positive integer/],
  [{ redis: { url: "redis://127.0.0.1", requestsTimeout: 1.5 } }, /option "redis\.requestsTimeout"/],
];

for (const [opts, message] of bad) {
  it(`setupPrimary(${JSON.stringify(opts)}) throws a TypeError`, () => {
    assert.throws(() => setupPrimary(opts), (err) => err instanceof TypeError && message.test(err.message));
  });
}

it("setupPrimary({ redis }) after workers started throws ERR_SOCKET_IO_CLUSTER_NO_HUB instead of not bridging", async (t) => {
  const { spawnSync } = require("node:child_process");
  const fs = require("node:fs");
  const os = require("node:os");
  const path = require("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rs-redis-late-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "app.js");
  fs.writeFileSync(
    file,
    `const cluster = require("node:cluster");
     if (cluster.isPrimary) {
       const worker = cluster.fork();
       worker.on("online", () => {
         let out;
         try {
           require(${JSON.stringify(path.join(__dirname, ".."))}).setupPrimary({ redis: { url: "redis://127.0.0.1:1" } });
           out = { threw: false };
         } catch (err) {
           out = { threw: true, code: err.code, message: err.message };
         }
         console.log(JSON.stringify(out));
         worker.kill("SIGKILL");
         process.exit(0);
       });
     } else {
       setTimeout(() => process.exit(0), 10000);
     }`,
  );
  const r = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 15000 });
  const out = JSON.parse(r.stdout.trim().split("\n").pop());
  assert.equal(out.threw, true, r.stdout + r.stderr);
  assert.equal(out.code, "ERR_SOCKET_IO_CLUSTER_NO_HUB");
  assert.match(out.message, /the redis option needs the hub/);
});
