"use strict";
// The release as a user gets it: `npm run release:pack`'s steps build this
// machine's addon against glibc 2.17 (napi-rs's cross toolchain) and pack the
// main package plus the platform package; an application installs both with
// no Rust toolchain on PATH and runs a two-worker cluster on them.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { io: connect } = require("socket.io-client");
const { freePort } = require("./helpers/free-port");
const { TARGETS, platformManifest, maxGlibc, hostTarget } = require("../scripts/release.js");

const ROOT = path.join(__dirname, "..");
const MAIN = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const HOST = hostTarget();

/** npm's own CLI, run by this node (PATH may not hold npm). */
function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js"),
  ];
  const which = spawnSync("sh", ["-c", "command -v npm"], { encoding: "utf8" });
  if (which.status === 0) candidates.push(path.join(path.dirname(fs.realpathSync(which.stdout.trim())), "npm-cli.js"));
  const found = candidates.find((c) => c && /npm-cli\.js$/.test(c) && fs.existsSync(c));
  assert.ok(found, `npm-cli.js not found among ${candidates.join(", ")}`);
  return found;
}

/** The names of an ELF file's sections ("" when the file is not 64-bit little-endian ELF). */
function sectionNames(bytes) {
  if (bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) return [];
  const shoff = Number(bytes.readBigUInt64LE(0x28));
  const shentsize = bytes.readUInt16LE(0x3a);
  const shnum = bytes.readUInt16LE(0x3c);
  const shstrndx = bytes.readUInt16LE(0x3e);
  const header = (i) => shoff + i * shentsize;
  const strtab = Number(bytes.readBigUInt64LE(header(shstrndx) + 0x18));
  const names = [];
  for (let i = 0; i < shnum; i++) {
    const at = strtab + bytes.readUInt32LE(header(i));
    names.push(bytes.toString("latin1", at, bytes.indexOf(0, at)));
  }
  return names;
}

test("the platform packages and optionalDependencies are in step with package.json", () => {
  assert.deepEqual(MAIN.napi.targets, TARGETS.map((t) => t.triple));
  assert.deepEqual(
    MAIN.optionalDependencies,
    Object.fromEntries(TARGETS.map((t) => [`${MAIN.name}-${t.platform}`, MAIN.version])),
  );
  for (const target of TARGETS) {
    const file = path.join(ROOT, "npm", target.platform, "package.json");
    assert.deepEqual(JSON.parse(fs.readFileSync(file, "utf8")), platformManifest(MAIN, target), `${file} (node scripts/release.js sync)`);
  }
});

test("this machine's release addon needs at most glibc 2.17, is stripped, and installs and runs without Rust", { timeout: 900_000 }, async (t) => {
  assert.ok(HOST, `no release target for ${process.platform}-${process.arch}`);
  const build = spawnSync(process.execPath, [path.join(ROOT, "scripts", "release.js"), "build"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 840_000,
  });
  assert.equal(build.status, 0, `release build failed:\n${build.stderr.slice(-4000)}`);

  const addon = path.join(ROOT, "npm", HOST.platform, `socket-io-cluster-rs.${HOST.platform}.node`);
  const bytes = fs.readFileSync(addon);
  if (HOST.libc === "glibc") {
    const needed = maxGlibc(bytes);
    assert.match(needed, /^2\.\d+/, "the addon names the glibc versions it needs");
    assert.ok(Number(needed.split(".")[1]) <= 17, `the addon needs GLIBC_${needed}, above the 2.17 baseline`);
  }
  const sections = sectionNames(bytes);
  assert.ok(sections.includes(".text") && sections.includes(".dynsym"), `read the section table: ${sections}`);
  assert.ok(!sections.includes(".symtab") && !sections.includes(".debug_info"), `the addon is not stripped: ${sections}`);
  // The same check sees the symbols of the development build (not stripped).
  const dev = fs.readdirSync(ROOT).find((f) => f.endsWith(".node"));
  if (dev) assert.ok(sectionNames(fs.readFileSync(path.join(ROOT, dev))).includes(".symtab"), `${dev} keeps its symbols`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rs-release-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, "dist");
  const pack = spawnSync(process.execPath, [path.join(ROOT, "scripts", "release.js"), "pack", "--out", out], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(pack.status, 0, `release pack failed:\n${pack.stderr.slice(-4000)}`);
  const tarballs = pack.stdout.trim().split("\n");
  const mainTgz = tarballs.find((f) => path.basename(f) === `${MAIN.name}-${MAIN.version}.tgz`);
  const platformTgz = tarballs.find((f) => path.basename(f) === `${MAIN.name}-${HOST.platform}-${MAIN.version}.tgz`);
  assert.ok(mainTgz && platformTgz, `packed: ${tarballs}`);

  // PATH holds node and sh, nothing else: no cargo, no rustc, no compiler.
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  fs.symlinkSync("/bin/sh", path.join(bin, "sh"));
  const env = { HOME: dir, PATH: bin, npm_config_cache: path.join(os.homedir(), ".npm"), npm_config_update_notifier: "false" };
  for (const tool of ["cargo", "rustc", "cc"]) {
    const probe = spawnSync(tool, ["--version"], { env });
    assert.equal(probe.error?.code, "ENOENT", `${tool} is reachable on the test's PATH`);
  }

  const app = path.join(dir, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
  const versions = (name) => MAIN.devDependencies[name];
  const install = spawnSync(
    process.execPath,
    [npmCli(), "install", "--no-audit", "--no-fund", "--prefer-offline", mainTgz, platformTgz, `socket.io@${versions("socket.io")}`],
    { cwd: app, env, encoding: "utf8", timeout: 240_000 },
  );
  assert.equal(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
  const warnings = `${install.stdout}\n${install.stderr}`.split("\n").filter((l) => /^npm warn/i.test(l));
  assert.deepEqual(warnings, [], "npm install printed warnings");
  const installed = path.join(app, "node_modules", MAIN.name);
  assert.deepEqual(fs.readdirSync(installed).filter((f) => f.endsWith(".node")), [], "the main package carries no addon");
  assert.ok(fs.existsSync(path.join(app, "node_modules", `${MAIN.name}-${HOST.platform}`, path.basename(addon))));

  // A two-worker cluster, each worker on its own port, so that the clients
  // are known to sit on different workers.
  const ports = [await freePort(), await freePort()];
  fs.writeFileSync(
    path.join(app, "app.js"),
    `const cluster = require("node:cluster");
const http = require("node:http");
const { Server } = require("socket.io");
const { setupPrimary, createAdapter } = require("socket.io-cluster-rs");
const ports = ${JSON.stringify(ports)};
if (cluster.isPrimary) {
  setupPrimary();
  let listening = 0;
  for (const port of ports) cluster.fork({ PORT: port }).on("listening", () => ++listening === ports.length && console.log("ready"));
  setTimeout(() => process.exit(2), 60_000).unref();
  process.on("SIGTERM", () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
} else {
  const io = new Server(http.createServer().listen(Number(process.env.PORT), "127.0.0.1"), { adapter: createAdapter() });
  io.on("connection", (socket) => {
    socket.on("shout", (data) => io.emit("news", { from: process.pid, data }));
    socket.on("who", async (ack) => ack((await io.fetchSockets()).map((s) => s.id).sort()));
  });
}
`,
  );
  const child = spawn(process.execPath, ["app.js"], { cwd: app, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  t.after(() => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app did not start:\n${output}`)), 30_000);
    child.stdout.on("data", () => output.includes("ready") && (clearTimeout(timer), resolve()));
    child.once("exit", (code) => reject(new Error(`the app exited with ${code}:\n${output}`)));
  });

  const clients = ports.map((port) => connect(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false }));
  t.after(() => clients.forEach((c) => c.close()));
  await Promise.all(clients.map((c) => new Promise((resolve, reject) => (c.on("connect", resolve), c.on("connect_error", reject)))));

  const heard = new Promise((resolve) => clients[1].once("news", resolve));
  const payload = { text: "hello", bytes: Buffer.from([0, 1, 2, 255]) };
  clients[0].emit("shout", payload);
  const news = await heard;
  assert.equal(news.data.text, "hello");
  assert.deepEqual([...Buffer.from(news.data.bytes)], [0, 1, 2, 255], "binary crossed workers intact");

  const ids = await clients[0].timeout(5_000).emitWithAck("who");
  assert.deepEqual(ids, clients.map((c) => c.id).sort(), "fetchSockets() sees the sockets of both workers");
});
