"use strict";
// The benchmark's CPU accounting (bench/proc.js): thread run times in
// nanoseconds when every thread is still there, the process's 10 ms ticks when
// one exited (its time would be missing from the threads' sum).

const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { cpuSnapshot, cpuBetween } = require("../bench/proc");

const snap = (seconds, threads) => ({ seconds, threads: new Map(Object.entries(threads)) });

describe("bench CPU accounting", () => {
  it("sums the threads' nanoseconds when all of them are still there", () => {
    const a = snap(1.0, { 10: 5e8, 11: 1e8 });
    const b = snap(1.01, { 10: 5.03e8, 11: 1.002e8 });
    assert.ok(Math.abs(cpuBetween(a, b) - 0.0032) < 1e-9);
  });

  it("counts a thread started in between whole", () => {
    const a = snap(1.0, { 10: 5e8 });
    const b = snap(1.02, { 10: 5.01e8, 12: 7e6 });
    assert.ok(Math.abs(cpuBetween(a, b) - 0.008) < 1e-9);
  });

  it("falls back to the ticks when a thread exited", () => {
    const a = snap(1.0, { 10: 5e8, 11: 3e8 });
    const b = snap(1.05, { 10: 5.01e8 });
    assert.equal(cpuBetween(a, b), 1.05 - 1.0);
  });

  it("has no figure for a process that is gone", () => {
    assert.equal(cpuBetween(null, snap(1, {})), null);
    assert.equal(cpuBetween(snap(1, {}), null), null);
  });

  const schedstat = fs.existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`);
  it("measures this process finer than a tick", { skip: !schedstat && "kernel without schedstat: the bench uses ticks" }, () => {
    const a = cpuSnapshot(process.pid);
    const end = process.hrtime.bigint() + 25_000_000n;
    let x = 0;
    while (process.hrtime.bigint() < end) x++;
    const used = cpuBetween(a, cpuSnapshot(process.pid));
    assert.ok(x > 0);
    // At least the 25 ms spun (minus scheduling noise), and not a whole number of 10 ms ticks.
    assert.ok(used >= 0.02, `measured ${used} s`);
    assert.ok(Math.abs(used * 100 - Math.round(used * 100)) > 1e-6, `measured ${used} s: ticks, not nanoseconds`);
  });
});
