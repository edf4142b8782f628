"use strict";
// The README's Quick start snippets run as written: each is taken out of
// README.md, only its port (3000 → a free loopback port) and the package name
// (→ this checkout) changed, started as an application, and then several
// socket.io-client connections chat through it: a message one client sends
// reaches every client, whichever worker each landed on.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const { freePort } = require("./helpers/free-port");
const { startRedis } = require("./helpers/redis-server");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { io: connect } = require("socket.io-client");

const ROOT = path.join(__dirname, "..");
const T = { timeout: 30_000 };

/** The ```js blocks of the README's section `heading`. */
function snippets(heading) {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`## ${heading}`);
  assert.ok(start >= 0, `the README has a "${heading}" section`);
  const end = readme.indexOf("\n## ", start + 3);
  return [...readme.slice(start, end).matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
}

function quickStartSnippets() {
  const blocks = snippets("Quick start");
  assert.ok(blocks.length >= 2, "the websocket and the one-port snippet");
  return blocks;
}

/** Starts `code` as an application; resolves once its port accepts connections. */
async function startApp(t, code, port, env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rs-snippet-"));
  const file = path.join(dir, "app.js");
  const source = code
    .replaceAll('require("socket.io-cluster-rs")', `require(${JSON.stringify(ROOT)})`)
    .replaceAll("listen(3000)", `listen(${port}, "127.0.0.1")`)
    .replaceAll("listen(process.env.PORT ?? 3000)", `listen(${port}, "127.0.0.1")`)
    .replaceAll("port: 3000", `port: ${port}, host: "127.0.0.1"`);
  assert.notEqual(source, code, "the snippet was adapted");
  fs.writeFileSync(file, source);
  const child = spawn(process.execPath, [file], {
    cwd: dir,
    env: { ...process.env, NODE_PATH: path.join(ROOT, "node_modules"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  t.after(() => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => s.end(() => resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the app did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Every worker listens: give the last ones a moment, then every client connects.
  await new Promise((r) => setTimeout(r, 500));
  return () => output;
}

/**
 * Connects `opts` clients (to `port`, or spread over the ports of a list),
 * has the first send a chat message, and checks that all get it.
 */
async function chatReachesEveryone(t, port, clientOpts) {
  const ports = [port].flat();
  // The port may accept before every worker serves it (with sticky, the
  // primary listens at once): a client retries until it is in, within 15 s.
  const clients = clientOpts.map((opts, i) =>
    connect(`http://127.0.0.1:${ports[i % ports.length]}`, { reconnectionDelay: 200, timeout: 3000, ...opts }),
  );
  t.after(() => clients.forEach((c) => c.disconnect()));
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("a client did not connect within 15 s")), 15_000);
          c.once("connect", () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  // Wait until each worker's adapter is connected to the hub: retry until a message reaches everyone.
  const deadline = Date.now() + 10_000;
  for (let n = 0; ; n++) {
    const text = `hello ${n}`;
    const got = clients.map((c) => new Promise((resolve) => c.once("chat", (m) => m === text && resolve(true))));
    clients[0].emit("chat", text);
    const all = await Promise.race([Promise.all(got), new Promise((r) => setTimeout(() => r(null), 1000))]);
    if (all) return;
    assert.ok(Date.now() < deadline, "a chat message reaches every client");
  }
}

it("the WebSocket quick start runs as written", T, async (t) => {
  const [snippet] = quickStartSnippets();
  const port = await freePort();
  await startApp(t, snippet, port);
  await chatReachesEveryone(t, port, Array.from({ length: 4 }, () => ({ transports: ["websocket"] })));
});

it("the one-port quick start (setupPrimary({ sticky }), long-polling) runs as written", T, async (t) => {
  const [, snippet] = quickStartSnippets();
  const port = await freePort();
  await startApp(t, snippet, port);
  await chatReachesEveryone(t, port, [
    { transports: ["polling"] },
    { transports: ["polling"] },
    {},
    {},
  ]);
});

it("the several-hosts snippet runs as written: two hosts through one Redis", T, async (t) => {
  const [snippet] = snippets("Several hosts");
  const redis = await startRedis({ t });
  const ports = [await freePort(), await freePort()];
  for (const port of ports) await startApp(t, snippet, port, { REDIS_URL: redis.url });
  // Clients on both hosts, each host's workers reached through its port.
  await chatReachesEveryone(t, ports, Array.from({ length: 6 }, () => ({ transports: ["websocket"] })));
});
