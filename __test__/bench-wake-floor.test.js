"use strict";
// `npm run bench:floor`'s Node.js half (bench/wake_floor.js), run short: it
// ends by itself and reports a figure in every cell it promises.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { execFile } = require("node:child_process");

it("bench/wake_floor.js measures Node.js wake-ups and ends by itself", async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(__dirname, "..", "bench", "wake_floor.js")],
      { env: { ...process.env, WAKE_FLOOR_PACED: "20", WAKE_FLOOR_ROUNDS: "500" }, timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  const rows = out
    .trim()
    .split("\n")
    .map((line) => line.split("|").slice(1, -1).map((c) => c.trim()));
  const data = rows.filter((r) => /^\d+$/.test(r[1]));
  assert.deepEqual(
    data.map((r) => r[0]),
    [
      "one-way, paced 10 ms apart",
      "round trip, back to back",
      "cold call: first trivial call after a 10 ms timer",
      "cold call: the same call right after",
    ],
  );
  assert.deepEqual(
    data.map((r) => Number(r[1])),
    [20, 500, 20, 20],
  );
  for (const r of data) {
    const [p50, p90] = [Number(r[2]), Number(r[3])];
    assert.ok(p50 > 0 && p90 >= p50, `${r[0]}: p50 ${r[2]}, p90 ${r[3]}`);
  }
  const cpu = data[1][4].split(" / ").map(Number);
  assert.equal(cpu.length, 2);
  for (const c of cpu) assert.ok(c > 0, `CPU per round trip ${data[1][4]}`);
});
