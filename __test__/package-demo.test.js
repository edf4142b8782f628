"use strict";
// `npm start` must run: the chat demo's own smoke test starts it on a free port,
// chats across two workers through real clients, and stops it.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const path = require("node:path");

test("the chat demo relays messages between workers and exits cleanly", { timeout: 60_000 }, () => {
  const env = { ...process.env };
  delete env.CHAT_ADAPTER; // the demo of this package, not the stock one
  const run = spawnSync(process.execPath, [path.join(__dirname, "..", "examples", "chat", "smoke.js")], {
    env,
    encoding: "utf8",
    timeout: 50_000,
  });
  assert.equal(run.status, 0, `smoke failed:\n${run.stdout}\n${run.stderr}`);
});
