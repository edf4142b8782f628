#!/usr/bin/env node
"use strict";
// Builds the prebuilt addons and packs what `npm publish` would publish:
// the main package plus one package per platform (napi-rs's layout: the main
// package names every platform package in `optionalDependencies`, and npm
// installs only the one whose `os`/`cpu`/`libc` match the machine).
//
//   node scripts/release.js sync                  write npm/<platform>/package.json from ./package.json
//   node scripts/release.js build [triple...]     build addons into npm/<platform>/ (default: this machine's)
//   node scripts/release.js pack [--out dir]      npm pack the main package and every platform package
//                                                 that holds its addon (default out: dist/)
//   node scripts/release.js glibc <file.node>     print the highest GLIBC symbol version a file needs
//
// `npm run release:pack` = sync + build (this machine's target) + pack.
//
// Linux glibc addons are linked against glibc 2.17 (as napi-rs's own releases
// are) with napi-rs's prebuilt gcc cross toolchain, fetched from the npm
// registry and unpacked with the system `tar` (xz); no container, no zig.
// Targets this machine cannot build (macOS, musl) are built by
// .github/workflows/release.yml.

const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const NAME = "socket-io-cluster-rs";
const CRATE = "socket_io_cluster_rs";
const TOOLCHAIN_CACHE = path.join(ROOT, "target", "cross-toolchains");

/**
 * Every target the package declares. `cross: "napi-cross"`: a Linux x64 or
 * arm64 host builds it with napi-rs's gcc toolchain (glibc 2.17 sysroot).
 * The others are built by the release workflow on their own platform (musl
 * in Alpine containers: Debian's musl-gcc cannot link a Rust cdylib, it lacks
 * a musl libgcc_s).
 */
const TARGETS = [
  { triple: "x86_64-unknown-linux-gnu", platform: "linux-x64-gnu", os: "linux", cpu: "x64", libc: "glibc", cross: "napi-cross" },
  { triple: "aarch64-unknown-linux-gnu", platform: "linux-arm64-gnu", os: "linux", cpu: "arm64", libc: "glibc", cross: "napi-cross" },
  { triple: "x86_64-unknown-linux-musl", platform: "linux-x64-musl", os: "linux", cpu: "x64", libc: "musl" },
  { triple: "aarch64-unknown-linux-musl", platform: "linux-arm64-musl", os: "linux", cpu: "arm64", libc: "musl" },
  { triple: "x86_64-apple-darwin", platform: "darwin-x64", os: "darwin", cpu: "x64" },
  { triple: "aarch64-apple-darwin", platform: "darwin-arm64", os: "darwin", cpu: "arm64" },
];

function fail(message) {
  console.error(`release: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
  return r;
}

function mainPackage() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
}

function addonFile(target) {
  return `${NAME}.${target.platform}.node`;
}

function platformDir(target) {
  return path.join(ROOT, "npm", target.platform);
}

/** The package.json of one platform package, derived from the main one. */
function platformManifest(main, target) {
  const manifest = {
    name: `${main.name}-${target.platform}`,
    version: main.version,
    description: `The ${target.triple} addon of ${main.name}; installed by it, not meant to be installed by hand.`,
    license: main.license,
    main: addonFile(target),
    files: [addonFile(target)],
    os: [target.os],
    cpu: [target.cpu],
    engines: main.engines,
  };
  if (target.libc) manifest.libc = [target.libc];
  return manifest;
}

/** Writes npm/<platform>/{package.json,README.md}; returns the names of the files that changed. */
function sync() {
  const main = mainPackage();
  const changed = [];
  const write = (file, text) => {
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8") === text) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    changed.push(path.relative(ROOT, file));
  };
  for (const target of TARGETS) {
    const dir = platformDir(target);
    write(path.join(dir, "package.json"), `${JSON.stringify(platformManifest(main, target), null, 2)}\n`);
    write(
      path.join(dir, "README.md"),
      `# \`${main.name}-${target.platform}\`\n\nThe **${target.triple}** addon of [\`${main.name}\`](https://www.npmjs.com/package/${main.name}).\n` +
        `\`npm install ${main.name}\` installs it on matching machines; do not depend on it directly.\n`,
    );
    write(path.join(dir, "LICENSE"), fs.readFileSync(path.join(ROOT, "LICENSE"), "utf8"));
  }
  return changed;
}

function hostTarget() {
  const cpu = process.arch;
  if (process.platform === "darwin") return TARGETS.find((t) => t.os === "darwin" && t.cpu === cpu);
  if (process.platform !== "linux") return undefined;
  const libc = process.report.getReport().header.glibcVersionRuntime ? "glibc" : "musl";
  return TARGETS.find((t) => t.os === "linux" && t.cpu === cpu && t.libc === libc);
}

/** Unpacks napi-rs's cross toolchain for `target` (cached); returns its root. */
function napiCrossToolchain(target) {
  const host = { x64: "x64", arm64: "arm64" }[process.arch];
  if (process.platform !== "linux" || !host) fail(`napi-rs's cross toolchains run on Linux x64 or arm64 hosts, not ${process.platform}-${process.arch}`);
  const arch = target.triple.split("-")[0];
  const pkg = `@napi-rs/cross-toolchain-${host}-target-${arch}@^1`;
  const dir = path.join(TOOLCHAIN_CACHE, `${host}-target-${arch}-v1`);
  const gcc = path.join(dir, "bin", `${target.triple}-gcc`);
  if (fs.existsSync(gcc)) return dir;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "napi-cross-"));
  try {
    console.error(`release: fetching ${pkg} from the npm registry`);
    const packed = run("npm", ["pack", pkg, "--silent", "--pack-destination", tmp], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
    const tgz = path.join(tmp, packed.stdout.trim().split("\n").pop());
    run("tar", ["-xzf", tgz, "-C", tmp]);
    const xz = fs.readdirSync(path.join(tmp, "package")).find((f) => f.endsWith(".tar.xz"));
    if (!xz) fail(`${pkg} holds no .tar.xz toolchain`);
    const staging = `${dir}.partial`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    run("tar", ["-xJf", path.join(tmp, "package", xz), "-C", staging]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(staging, dir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!fs.existsSync(gcc)) fail(`${pkg} has no ${path.relative(dir, gcc)}`);
  return dir;
}

/** True when rustc has the standard library for `triple`; installs it with rustup otherwise. */
function ensureRustTarget(triple) {
  const sysroot = spawnSync("rustc", ["--print", "sysroot"], { encoding: "utf8" });
  if (sysroot.status !== 0) fail("`rustc` was not found: building addons needs the stable Rust toolchain (https://rustup.rs)");
  if (fs.existsSync(path.join(sysroot.stdout.trim(), "lib", "rustlib", triple))) return;
  console.error(`release: rustup target add ${triple}`);
  run("rustup", ["target", "add", triple]);
}

/** The environment that makes cargo link `target` against the chosen toolchain. */
function crossEnv(target) {
  const env = { ...process.env };
  const key = target.triple.toUpperCase().replace(/-/g, "_");
  const ccKey = target.triple.replace(/-/g, "_");
  if (target.cross === "napi-cross") {
    const bin = path.join(napiCrossToolchain(target), "bin");
    env[`CARGO_TARGET_${key}_LINKER`] = path.join(bin, `${target.triple}-gcc`);
    env[`CC_${ccKey}`] = path.join(bin, `${target.triple}-gcc`);
    env[`AR_${ccKey}`] = path.join(bin, `${target.triple}-ar`);
  } else {
    fail(`${target.triple} is built by .github/workflows/release.yml, on a machine of its own platform`);
  }
  return env;
}

function build(triples) {
  const chosen = triples.length ? triples.map((t) => TARGETS.find((x) => x.triple === t || x.platform === t) || fail(`unknown target ${t}`)) : [hostTarget() || fail(`no target for ${process.platform}-${process.arch}`)];
  const targetDir = path.join(ROOT, "target");
  for (const target of chosen) {
    ensureRustTarget(target.triple);
    const env = crossEnv(target);
    console.error(`release: building ${target.triple}`);
    run("cargo", ["build", "--locked", "--lib", "--features", "addon", "--profile", "dist", "--target", target.triple, "--target-dir", targetDir], { cwd: ROOT, env });
    const lib = path.join(targetDir, target.triple, "dist", target.os === "darwin" ? `lib${CRATE}.dylib` : `lib${CRATE}.so`);
    const dest = path.join(platformDir(target), addonFile(target));
    fs.copyFileSync(lib, `${dest}.tmp`);
    fs.renameSync(`${dest}.tmp`, dest);
    const glibc = target.libc === "glibc" ? `, needs GLIBC ${maxGlibc(fs.readFileSync(dest)) || "none"}` : "";
    console.error(`release: ${path.relative(ROOT, dest)} (${fs.statSync(dest).size} bytes${glibc})`);
  }
}

/**
 * The highest glibc symbol version an ELF file asks for, from the version
 * names in its dynamic string table ("GLIBC_2.17"); "" when it names none.
 */
function maxGlibc(bytes) {
  let best = null;
  for (const m of bytes.toString("latin1").matchAll(/GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\0/g)) {
    const v = [Number(m[1]), Number(m[2]), Number(m[3] || 0)];
    if (!best || v[0] > best[0] || (v[0] === best[0] && (v[1] > best[1] || (v[1] === best[1] && v[2] > best[2])))) best = v;
  }
  return best ? best.slice(0, best[2] ? 3 : 2).join(".") : "";
}

function npmPack(dir, out, extra = []) {
  const r = run("npm", ["pack", "--silent", "--pack-destination", out, ...extra], { cwd: dir, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  return path.join(out, r.stdout.trim().split("\n").pop());
}

/**
 * Rewrites the packed main package's package.json as users get it: without
 * the repository's scripts and devDependencies. Its `prepare` (the clone's
 * build) would otherwise count as an install script when the tarball is
 * installed as a file, and npm 11 warns about every such script.
 */
function publishedManifest(tgz) {
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), "release-main-"));
  try {
    run("tar", ["-xzf", tgz, "-C", staging]);
    const file = path.join(staging, "package", "package.json");
    const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
    delete manifest.scripts;
    delete manifest.devDependencies;
    fs.writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
    run("tar", ["-czf", tgz, "-C", staging, "package"]);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return tgz;
}

function pack(out) {
  fs.mkdirSync(out, { recursive: true });
  const tarballs = [];
  for (const target of TARGETS) {
    const dir = platformDir(target);
    if (fs.existsSync(path.join(dir, addonFile(target)))) tarballs.push(npmPack(dir, out));
  }
  if (!tarballs.length) fail("no platform package holds its addon: run `node scripts/release.js build` first");
  // The main package's `prepare` builds binding.js (napi-rs's loader) for this checkout.
  tarballs.unshift(publishedManifest(npmPack(ROOT, out)));
  for (const t of tarballs) console.log(t);
}

function main(argv) {
  const [command, ...rest] = argv;
  const outAt = rest.indexOf("--out");
  const out = outAt >= 0 ? path.resolve(rest.splice(outAt, 2)[1]) : path.join(ROOT, "dist");
  switch (command) {
    case "sync":
      for (const f of sync()) console.error(`release: wrote ${f}`);
      break;
    case "build":
      build(rest);
      break;
    case "pack":
      pack(out);
      break;
    case "all":
      sync();
      build(rest);
      pack(out);
      break;
    case "glibc":
      console.log(maxGlibc(fs.readFileSync(rest[0])));
      break;
    default:
      fail("usage: release.js sync | build [triple...] | pack [--out dir] | all [triple...] [--out dir] | glibc <file>");
  }
}

module.exports = { TARGETS, platformManifest, maxGlibc, hostTarget };

if (require.main === module) main(process.argv.slice(2));
