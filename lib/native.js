"use strict";
// Loads the compiled addon, with an error that says what to do when it is
// missing: what helps depends on whether this is a clone of the repository
// (it has the build tooling) or an install from the registry (it has not).

const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");

function howToBuild() {
  const clone = fs.existsSync(path.join(ROOT, "node_modules", "@napi-rs", "cli"));
  if (clone) return "run `npm run build` here (needs the stable Rust toolchain, https://rustup.rs)";
  return (
    "install the stable Rust toolchain (https://rustup.rs), then run `npm rebuild socket.io-cluster-rs` " +
    "in your application; Linux and macOS are supported"
  );
}

let binding;
try {
  binding = require("../binding.js");
} catch (err) {
  // napi-rs's loader puts what it tried in the cause chain (first lines
  // only; its WebAssembly fallback does not apply to this package).
  const reasons = [];
  for (let e = err.cause; e && reasons.length < 10; e = e.cause) {
    const line = String(e.message).split("\n")[0];
    if (!/wasi|wasm/i.test(line)) reasons.push(line);
  }
  const e = new Error(
    `socket.io-cluster-rs: no native addon for ${process.platform}-${process.arch} could be loaded; ` +
      `${howToBuild()}. Tried: ${reasons.join("; ") || String(err.message).split("\n")[0]}`,
  );
  e.code = "ERR_SOCKET_IO_CLUSTER_NO_ADDON";
  e.cause = err;
  throw e;
}

module.exports = binding;
