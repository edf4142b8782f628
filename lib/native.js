"use strict";
// Loads the compiled addon through napi-rs's loader (binding.js: an addon
// built next to it first, then the platform package npm installed), with
// errors that say what to do. What helps depends on the platform (prebuilt,
// buildable from source, or unsupported) and on whether this is a clone of the
// repository (it has the build tooling) or an install from the registry.

const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const MANIFEST = require("../package.json");
const PACKAGE = MANIFEST.name;

/** Platforms the adapter runs on: node:cluster workers and Unix-domain sockets. */
const UNIX = new Set(["linux", "darwin"]);

/** napi-rs's platform name for this machine, e.g. "linux-x64-gnu". */
function platformName() {
  const { platform, arch } = process;
  if (platform !== "linux") return `${platform}-${arch}`;
  return `linux-${arch}-${process.report.getReport().header.glibcVersionRuntime ? "gnu" : "musl"}`;
}

function failure(code, message, cause) {
  const e = new Error(`${PACKAGE}: ${message}`);
  e.code = code;
  if (cause) e.cause = cause;
  return e;
}

/** The first line of every reason napi-rs's loader gives (its WebAssembly fallback does not apply here). */
function reasons(err) {
  const lines = [];
  for (let e = err.cause; e && lines.length < 10; e = e.cause) {
    const line = String(e.message).split("\n")[0];
    if (!/wasi|wasm/i.test(line)) lines.push(line);
  }
  return lines.join("; ") || String(err.message).split("\n")[0];
}

function advice(platform) {
  const clone = fs.existsSync(path.join(ROOT, "node_modules", "@napi-rs", "cli"));
  if (clone) return "run `npm run build` in the repository (needs the stable Rust toolchain, https://rustup.rs)";
  const declared = Object.keys(MANIFEST.optionalDependencies || {});
  const fromSource =
    "build it from source: install the stable Rust toolchain (https://rustup.rs), then run `npx socket-io-cluster-rs-build` in your application";
  const pkg = `${PACKAGE}-${platform}`;
  if (!declared.includes(pkg)) return `no prebuilt addon exists for ${platform}; ${fromSource}`;
  return (
    `the prebuilt addon comes in the optional dependency ${pkg}: make sure npm installs it ` +
    "(not `--omit=optional`; a package-lock.json written on another platform can leave it out: " +
    "remove node_modules and the lock file's entry, then `npm install`), or " +
    fromSource
  );
}

function load() {
  if (!UNIX.has(process.platform)) {
    throw failure(
      "ERR_SOCKET_IO_CLUSTER_UNSUPPORTED_PLATFORM",
      `${process.platform} is not supported: the adapter runs on Linux and macOS, where node:cluster workers reach the ` +
        "primary over Unix-domain sockets; on other systems use @socket.io/cluster-adapter",
    );
  }
  try {
    return require("../binding.js");
  } catch (err) {
    const platform = platformName();
    throw failure(
      "ERR_SOCKET_IO_CLUSTER_NO_ADDON",
      `no native addon for ${platform} could be loaded; ${advice(platform)}. Tried: ${reasons(err)}`,
      err,
    );
  }
}

module.exports = load();
