"use strict";
// What `npm publish` would ship as the main package: the loader and the JS,
// no addon (those come in the platform packages, see package-prebuilt.test.js)
// and no install hook, but the Rust sources and the explicit source build
// (`npx socket-io-cluster-rs-build`) for platforms without a prebuilt addon.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.join(__dirname, "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function packedFiles() {
  // --ignore-scripts: no `prepare` rebuild; `npm install` already built binding.js.
  const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out)[0].files.map((f) => f.path);
}

test("the package ships the loader, the Rust sources and the source build, not addons, tests or benchmarks", () => {
  const files = packedFiles();
  for (const f of [
    "index.js",
    "index.mjs",
    "index.d.ts",
    "binding.js",
    "binding.d.ts",
    "lib/adapter.js",
    "scripts/build-native.js",
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "src/lib.rs",
    "src/hub.rs",
  ]) {
    assert.ok(files.includes(f), `${f} is not in the package`);
  }
  for (const f of files) {
    assert.ok(!/^(__test__|bench|target|examples|node_modules|npm|dist)\//.test(f), `${f} should not be in the package`);
    assert.ok(!f.endsWith(".node"), `${f}: addons belong in the platform packages`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  // npm 11 skips dependencies' install scripts unless the application allows
  // them (and warns): the package must not need one.
  for (const hook of ["preinstall", "install", "postinstall"]) assert.equal(pkg.scripts[hook], undefined, `${hook} script`);
  assert.equal(pkg.bin["socket-io-cluster-rs-build"], "scripts/build-native.js");
});

test("npx socket-io-cluster-rs-build builds the addon from the tarball's sources, without devDependencies", { timeout: 600_000 }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-cluster-rs-pack-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tarball = execFileSync(npm, ["pack", "--ignore-scripts", "--pack-destination", dir], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  })
    .trim()
    .split("\n")
    .pop();
  execFileSync("tar", ["-xzf", path.join(dir, tarball), "-C", dir]);
  const pkgDir = path.join(dir, "package");
  // As on a platform the publisher did not build for.
  for (const f of fs.readdirSync(pkgDir)) if (f.endsWith(".node")) fs.rmSync(path.join(pkgDir, f));
  // npm packs every file with a fixed 1985 mtime: against the target
  // directory this test keeps between runs, cargo would take the sources for
  // older than the last build and not rebuild them.
  const now = new Date();
  for (const f of fs.readdirSync(path.join(pkgDir, "src"))) fs.utimesSync(path.join(pkgDir, "src", f), now, now);

  // No node_modules above the temporary directory: no platform package, so
  // the build has to happen. The target directory persists under ours so
  // that a second run is incremental.
  const env = { ...process.env, CARGO_TARGET_DIR: path.join(root, "target", "package-test") };
  const build = spawnSync(process.execPath, ["scripts/build-native.js"], {
    cwd: pkgDir,
    env,
    encoding: "utf8",
    timeout: 540_000,
  });
  assert.equal(build.status, 0, `source build failed:\n${build.stdout}\n${build.stderr}`);
  assert.ok(
    fs.readdirSync(pkgDir).some((f) => f.endsWith(".node")),
    "the build did not leave an addon next to binding.js",
  );

  // The unpacked package works: its hub starts, answers stats() and stops.
  // Its JS dependencies come from our node_modules (NODE_PATH).
  const check = spawnSync(
    process.execPath,
    [
      "-e",
      `const m = require(${JSON.stringify(pkgDir)});
       const h = m.setupPrimary();
       const s = h.stats();
       h.close();
       console.log(JSON.stringify({ f: typeof m.createAdapter, peers: s.peers.length }));`,
    ],
    { env: { ...process.env, NODE_PATH: path.join(root, "node_modules") }, encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(check.status, 0, check.stderr);
  assert.deepEqual(JSON.parse(check.stdout.trim()), { f: "function", peers: 0 });

  // A second run finds the addon loading and builds nothing.
  const again = spawnSync(process.execPath, ["scripts/build-native.js"], {
    cwd: pkgDir,
    env: { ...env, CARGO: "/nonexistent/cargo" },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(again.status, 0, again.stderr);
});

test("without a loadable addon and without cargo, the source build says what to do", { timeout: 60_000 }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-cluster-rs-nocargo-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, "scripts"));
  fs.copyFileSync(path.join(root, "scripts", "build-native.js"), path.join(dir, "scripts", "build-native.js"));
  fs.copyFileSync(path.join(root, "binding.js"), path.join(dir, "binding.js"));
  fs.copyFileSync(path.join(root, "Cargo.toml"), path.join(dir, "Cargo.toml"));
  const r = spawnSync(process.execPath, ["scripts/build-native.js"], {
    cwd: dir,
    env: { ...process.env, CARGO: "/nonexistent/cargo" },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /`cargo` was not found/);
  assert.match(r.stderr, /rustup\.rs/);
});

test("the source build works outside node_modules and removes cargo's build directory afterwards", { timeout: 60_000 }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-cluster-rs-cleanup-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pkgDir = path.join(dir, "package");
  fs.mkdirSync(path.join(pkgDir, "scripts"), { recursive: true });
  for (const f of ["binding.js", "package.json"]) fs.copyFileSync(path.join(root, f), path.join(pkgDir, f));
  fs.copyFileSync(path.join(root, "scripts", "build-native.js"), path.join(pkgDir, "scripts", "build-native.js"));
  fs.writeFileSync(path.join(pkgDir, "Cargo.toml"), "");
  // A stand-in for cargo that "builds" by copying this checkout's addon into
  // the target directory it is given, and notes which one that was.
  const addon = fs.readdirSync(root).find((f) => f.endsWith(".node"));
  const seen = path.join(dir, "target-dir-seen");
  const fakeCargo = path.join(dir, "cargo");
  fs.writeFileSync(
    fakeCargo,
    `#!/bin/sh
if [ "$1" = "--version" ]; then echo "cargo 1.0.0 (stand-in)"; exit 0; fi
mkdir -p "$CARGO_TARGET_DIR/release" && cp ${JSON.stringify(path.join(root, addon))} "$CARGO_TARGET_DIR/release/libsocket_io_cluster_rs.so" && echo "$CARGO_TARGET_DIR" > ${JSON.stringify(seen)}
`,
    { mode: 0o755 },
  );
  const env = { ...process.env, CARGO: fakeCargo };
  delete env.CARGO_TARGET_DIR;
  const build = spawnSync(process.execPath, ["scripts/build-native.js"], { cwd: pkgDir, env, encoding: "utf8", timeout: 30_000 });
  assert.equal(build.status, 0, `source build failed:\n${build.stdout}\n${build.stderr}`);
  const targetDir = fs.readFileSync(seen, "utf8").trim();
  assert.ok(!targetDir.startsWith(pkgDir), `cargo built inside the package: ${targetDir}`);
  assert.equal(fs.existsSync(targetDir), false, "cargo's build directory was removed");
  assert.equal(fs.existsSync(path.join(pkgDir, "target")), false);
  assert.ok(fs.readdirSync(pkgDir).some((f) => f.endsWith(".node")), "the addon is in place");
});
