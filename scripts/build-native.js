#!/usr/bin/env node
"use strict";
// Builds the native addon from the package's Rust sources, for a platform
// without a prebuilt addon (or to replace it): run it in the application as
// `npx socket-io-cluster-rs-build` with the stable Rust toolchain installed.
//
// Installs from the registry take the addon from the platform package npm
// picks (`optionalDependencies`); the package has no install hook (npm 11
// skips dependencies' install scripts unless the application allows them),
// so building from source is always this explicit step. A clone of the
// repository builds with `npm run build` instead (its `prepare` script).
//
// Uses nothing but Node's built-ins: a registry install has no devDependencies.

const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const NAME = "socket-io-cluster-rs";
const CRATE = "socket_io_cluster_rs";

function fail(message) {
  console.error(`socket.io-cluster-rs: ${message}`);
  process.exit(1);
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env });
  if (r.error) return r.error;
  return r.status === 0 ? null : new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

/** True when `binding.js` loads an addon (checked in a child: a bad addon may crash its process). */
function addonLoads() {
  if (!fs.existsSync(path.join(ROOT, "binding.js"))) return false;
  const r = spawnSync(process.execPath, ["-e", "require('./binding.js').protocolVersion()"], {
    cwd: ROOT,
    stdio: "ignore",
  });
  return r.status === 0;
}

/** The file name `binding.js` looks for on this platform (napi-rs naming). */
function addonFileName() {
  const { platform, arch } = process;
  if (platform === "darwin") return `${NAME}.darwin-${arch}.node`;
  if (platform === "linux") {
    const glibc = process.report.getReport().header.glibcVersionRuntime;
    return `${NAME}.linux-${arch}-${glibc ? "gnu" : "musl"}.node`;
  }
  return fail(`${platform} is not supported: the adapter needs Unix-domain sockets and node:cluster on Linux or macOS`);
}

function buildWithCargo() {
  const cargo = process.env.CARGO || "cargo";
  const version = spawnSync(cargo, ["--version"], { encoding: "utf8" });
  if (version.error || version.status !== 0) {
    fail(
      "no prebuilt addon for this platform, and `cargo` was not found to build one. " +
        "Install the stable Rust toolchain (https://rustup.rs) and run `npx socket-io-cluster-rs-build` again.",
    );
  }
  // Cargo's build directory (about 150 MB) goes to a temporary directory that
  // is removed afterwards, not into node_modules; a CARGO_TARGET_DIR the user
  // chose is theirs to keep.
  const ownTarget = !process.env.CARGO_TARGET_DIR;
  const targetDir = ownTarget
    ? fs.mkdtempSync(path.join(os.tmpdir(), "socket.io-cluster-rs-build-"))
    : path.resolve(ROOT, process.env.CARGO_TARGET_DIR);
  let failure = null;
  try {
    const err = run(cargo, ["build", "--release", "--locked", "--lib", "--features", "addon"], {
      ...process.env,
      CARGO_TARGET_DIR: targetDir,
    });
    if (err) failure = `building the native addon failed: ${err.message}`;
    else copyAddon(targetDir);
  } finally {
    if (ownTarget) fs.rmSync(targetDir, { recursive: true, force: true });
  }
  if (failure) fail(failure);
  if (!addonLoads()) fail(`the addon built at ${path.join(ROOT, addonFileName())} does not load`);
}

/** Copies the library cargo built in `targetDir` to the file name `binding.js` looks for. */
function copyAddon(targetDir) {
  const lib = path.join(targetDir, "release", process.platform === "darwin" ? `lib${CRATE}.dylib` : `lib${CRATE}.so`);
  // Copied to a fresh file and renamed over the old one: a running process may
  // still have the old addon mapped.
  const dest = path.join(ROOT, addonFileName());
  fs.copyFileSync(lib, `${dest}.tmp`);
  fs.renameSync(`${dest}.tmp`, dest);
}

function main() {
  const force = process.argv.includes("--force");
  if (!force && addonLoads()) {
    console.log("socket.io-cluster-rs: the addon for this platform loads; nothing to build (--force builds anyway)");
    return;
  }
  if (!fs.existsSync(path.join(ROOT, "Cargo.toml"))) fail("the package has neither a loadable addon nor its sources");
  buildWithCargo();
  console.log(`socket.io-cluster-rs: built ${path.join(ROOT, addonFileName())}`);
}

main();
