"use strict";
// The chat demo (`npm start`) in headless Chromium: two pages on different
// workers; one page goes offline (the browser's own offline switch) while the
// other sends, then comes back online. It must say "recovered" and show every
// missed message once, in order. A screenshot is kept in test-artifacts/.
//
// Chromium comes from the Debian package (.ci/run installs it), driven by
// playwright-core.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { freePort } = require("./helpers/free-port");

const ROOT = path.join(__dirname, "..");
const ARTIFACTS = path.join(ROOT, "test-artifacts");
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));

test("the chat demo recovers a page that went offline, with every missed message once, in order", { timeout: 90_000 }, async (t) => {
  assert.ok(CHROMIUM, "chromium is not installed (apt-get install chromium; .ci/run does it)");
  const { chromium } = require("playwright-core");
  const port = await freePort();
  const demo = spawn(process.execPath, [path.join(ROOT, "examples", "chat", "server.js")], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", WORKERS: "2" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  demo.stdout.on("data", (d) => (output += d));
  demo.stderr.on("data", (d) => (output += d));
  t.after(() => {
    try {
      process.kill(-demo.pid, "SIGKILL");
    } catch {}
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${output}`)), 20_000);
    demo.stdout.on("data", () => /workers listening/.test(output) && (clearTimeout(timer), resolve()));
  });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  t.after(() => browser.close());
  const url = `http://127.0.0.1:${port}/`;
  const open = async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => /connected to worker/.test(document.getElementById("me").textContent), null, { timeout: 15_000 });
    const worker = await page.evaluate(() => /worker (\d+)/.exec(document.getElementById("me").textContent)[1]);
    return { context, page, worker };
  };
  const a = await open();
  let b = await open();
  // The primary's balancer sends a new page to the least-loaded worker; should both
  // still land on one, a request in between shifts the tie, until they sit on different workers.
  for (let i = 0; i < 10 && b.worker === a.worker; i++) {
    await b.context.close();
    await new Promise((resolve, reject) =>
      http.get(url, { agent: false }, (res) => res.resume().on("end", resolve)).on("error", reject),
    );
    b = await open();
  }
  assert.notEqual(a.worker, b.worker, "two pages on different workers");

  const log = (p) => p.page.evaluate(() => [...document.querySelectorAll("#log li")].map((li) => li.textContent));
  const say = async (p, text) => {
    await p.page.fill("#text", text);
    await p.page.click("button");
  };
  const waitLog = (p, text) =>
    p.page.waitForFunction((s) => [...document.querySelectorAll("#log li")].some((li) => li.textContent.endsWith(s)), text, { timeout: 15_000 });

  await say(a, "hello before the blip");
  await waitLog(a, "hello before the blip");
  await waitLog(b, "hello before the blip");

  await a.context.setOffline(true);
  await a.page.waitForFunction(() => /Disconnected/.test(document.getElementById("me").textContent), null, { timeout: 15_000 });
  for (const text of ["missed 1", "missed 2", "missed 3"]) await say(b, text);
  await waitLog(b, "missed 3");
  await new Promise((r) => setTimeout(r, 1000));
  await a.context.setOffline(false);
  await a.page.waitForFunction(() => document.getElementById("me").dataset.recovered === "yes", null, { timeout: 20_000 });
  await waitLog(a, "missed 3");

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await a.page.screenshot({ path: path.join(ARTIFACTS, "demo-recovered.png") });
  const lines = (await log(a)).filter((l) => !l.startsWith("primary:"));
  const chat = lines.map((l) => l.replace(/^worker \d+: /, ""));
  assert.deepEqual(chat, ["hello before the blip", "missed 1", "missed 2", "missed 3"]);
  assert.match(await a.page.textContent("#me"), /recovered/);
});
