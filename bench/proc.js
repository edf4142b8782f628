"use strict";
// Readers for /proc/<pid>/{stat,status,clear_refs} (Linux only).
//
// Why /proc instead of process.cpuUsage(): it is read from the outside, so the
// measured processes do no extra work, and it covers every thread of the
// process (libuv pool, and the native adapter's own threads). CPU comes from the
// threads' schedstat (nanoseconds) where it can: /proc/<pid>/stat counts 10 ms
// ticks, too coarse for a relay that works a few ms per scenario.

const fs = require("node:fs");
const { execFileSync } = require("node:child_process");

let clkTck = 100;
try {
  clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {}

/** utime+stime of the whole process in seconds, or null if it is gone. */
function cpuSeconds(pid) {
  let s;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces or parentheses: split after the last ')'.
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state), so utime (field 14) is f[11] and stime (15) is f[12].
  return (Number(f[11]) + Number(f[12])) / clkTck;
}

/** Nanoseconds each live thread of `pid` has run (/proc/<pid>/task/<tid>/schedstat), or null. */
function threadRunNs(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const out = new Map();
  for (const tid of tids) {
    try {
      const ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      if (Number.isFinite(ns)) out.set(tid, ns);
    } catch {
      // The thread just exited: cpuBetween() sees it missing and uses the ticks.
    }
  }
  return out;
}

/** What cpuBetween() compares: the process's CPU ticks and its threads' run times. */
function cpuSnapshot(pid) {
  const seconds = cpuSeconds(pid);
  return seconds === null ? null : { seconds, threads: threadRunNs(pid) };
}

/**
 * CPU seconds `pid` used between two snapshots. The threads' nanosecond run
 * times when every thread of the first snapshot is still there (threads started
 * in between count whole); otherwise the 10 ms ticks of /proc/<pid>/stat, which
 * also keep the time of threads that exited.
 */
function cpuBetween(a, b) {
  if (a === null || b === null) return null;
  const ticks = b.seconds - a.seconds;
  if (!a.threads || !b.threads || a.threads.size === 0) return ticks;
  let ns = 0;
  for (const [tid, t] of b.threads) ns += t - (a.threads.get(tid) || 0);
  for (const tid of a.threads.keys()) if (!b.threads.has(tid)) return ticks;
  return ns / 1e9;
}

function statusField(pid, name) {
  let s;
  try {
    s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const m = s.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : null;
}

/** Peak resident set size in bytes (VmHWM). */
const peakRss = (pid) => statusField(pid, "VmHWM");

/**
 * Resets VmHWM to the current RSS (Linux >= 4.0, writing "5" to clear_refs), so
 * each scenario run inside one cluster gets its own peak. Returns false if the
 * kernel refused; the peak then covers everything since the process started.
 */
function resetPeakRss(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
  } catch {
    return false;
  }
}

/** Nanoseconds this process's main thread has run (its tid is its pid): what a bench role measures of itself. */
function mainThreadNs() {
  return Number(fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]);
}

/** `--name value` numbers from the command line, each with its default. */
function numericFlags(defaults, argv = process.argv.slice(2)) {
  const out = {};
  for (const [name, def] of Object.entries(defaults)) {
    const i = argv.indexOf(`--${name}`);
    out[name] = i >= 0 ? Number(argv[i + 1]) : def;
  }
  return out;
}

module.exports = { cpuSnapshot, cpuBetween, peakRss, resetPeakRss, isAlive, clkTck, mainThreadNs, numericFlags };
