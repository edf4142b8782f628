"use strict";
// Without a loadable addon, requiring the package fails with an error that
// says what to do: for an install from the registry, rebuild with a Rust
// toolchain; for a clone of the repository, `npm run build`.

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

function loadError(dir) {
  const script = `try { require(${JSON.stringify(dir)}); console.log("loaded") } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
  // The package's own dependencies (socket.io-adapter, debug) from this checkout.
  const env = { ...process.env, NODE_PATH: path.join(ROOT, "node_modules") };
  const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000, env });
  assert.notEqual(out.trim(), "loaded");
  return JSON.parse(out);
}

test("an install from the registry is told to rebuild with a Rust toolchain", (t) => {
  const err = loadError(packageWithoutAddon(t, false));
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_NO_ADDON");
  assert.match(err.message, new RegExp(`${process.platform}-${process.arch}`));
  assert.match(err.message, /npm rebuild socket\.io-cluster-rs/);
  assert.match(err.message, /rustup\.rs/);
  assert.doesNotMatch(err.message, /npm run build|npm has a bug|wasi/i);
});

test("a clone of the repository is told to run npm run build", (t) => {
  const err = loadError(packageWithoutAddon(t, true));
  assert.equal(err.code, "ERR_SOCKET_IO_CLUSTER_NO_ADDON");
  assert.match(err.message, /npm run build/);
});
