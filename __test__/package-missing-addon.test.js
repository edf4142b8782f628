"use strict";
// Without a loadable addon, requiring the package fails with an error that
// says what to do: on a platform with a prebuilt addon, get npm to install its
// platform package (or build from source); on a Unix without one, build from
// source; in a clone of the repository, `npm run build`; on Windows, nothing
// helps and the error says so.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

const ROOT = path.join(__dirname, "..");

/** A copy of the package's JS without any addon; `clone` adds the build tooling's marker. */
function packageWithoutAddon(t, clone) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rs-noaddon-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ["index.js", "binding.js", "package.json"]) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  fs.cpSync(path.join(ROOT, "lib"), path.join(dir, "lib"), { recursive: true });
  if (clone) fs.mkdirSync(path.join(dir, "node_modules", "@napi-rs", "cli"), { recursive: true });
  return dir;
}

/** Requires the package in a child whose process.platform / arch may be pretended. */
function loadError(dir, pretend = {}) {
  const script = `
    for (const [k, v] of Object.entries(${JSON.stringify(pretend)})) Object.defineProperty(process, k, { value: v });
    try { require(${JSON.stringify(dir)}); console.log("loaded") } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
  // The package's own dependencies (socket.io-adapter, debug) from this checkout.
  const env = { ...process.env, NODE_PATH: path.join(ROOT, "node_modules") };
  const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000, env });
  assert.notEqual(out.trim(), "loaded");
  return JSON.parse(out);
}

const platform =
  process.platform === "linux"
    ? `linux-${process.arch}-${process.report.getReport().header.glibcVersionRuntime ? "gnu" : "musl"}`
    : `${process.platform}-${process.arch}`;

test("an install from the registry is told which platform package is missing, and how to build from source", (t) => {
  const err = loadError(packageWithoutAddon(t, false));
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_NO_ADDON");
  assert.match(err.message, new RegExp(`optional dependency socket\\.io-cluster-rs-${platform}`));
  assert.match(err.message, /--omit=optional/);
  assert.match(err.message, /npx socket-io-cluster-rs-build/);
  assert.match(err.message, /rustup\.rs/);
  assert.doesNotMatch(err.message, /npm run build|npm rebuild|npm has a bug|wasi/i);
});

test("a Unix platform without a prebuilt addon is told to build from source", (t) => {
  const err = loadError(packageWithoutAddon(t, false), { arch: "riscv64" });
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_NO_ADDON");
  assert.match(err.message, /no prebuilt addon exists for \w+-riscv64/);
  assert.match(err.message, /npx socket-io-cluster-rs-build/);
  assert.doesNotMatch(err.message, /optional dependency/);
});

test("Windows is refused with its own code, before any addon is looked for", (t) => {
  const err = loadError(packageWithoutAddon(t, false), { platform: "win32" });
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_UNSUPPORTED_PLATFORM");
  assert.match(err.message, /win32 is not supported/);
  assert.match(err.message, /@socket\.io\/cluster-adapter/);
});

test("a clone of the repository is told to run npm run build", (t) => {
  const err = loadError(packageWithoutAddon(t, true));
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_NO_ADDON");
  assert.match(err.message, /npm run build/);
});
