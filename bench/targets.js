"use strict";
// Condenses a results file of run.js into the table of the README: the
// project's speed targets, each with the rows of the run that measure it.
//
//   node bench/targets.js [bench/results/latest.json]
//
// Prints markdown to stdout. A target is "met" only when every row it names
// meets its bound; rows the run does not have (e.g. a --quick run has no W=4)
// are shown as missing.

const fs = require("node:fs");
const path = require("node:path");

const file = process.argv[2] || path.join(__dirname, "results", "latest.json");
const { meta, summary } = JSON.parse(fs.readFileSync(file, "utf8"));

function row(W, scenario, metric) {
  return summary.find((r) => r.W === W && r.scenario === scenario && r.metric === metric) || null;
}

// Bounds: { ratio: r } → rs/stock ≤ r; { max: v } → rs median ≤ v; { zero: true } → rs median is 0.
const TARGETS = [
  {
    name: "1. all workers emit 100 B, W=4, 40k msg/s: remote p99 ≤ 10 ms, no loss",
    rows: [
      [4, "all-emit 100B @40k/s", "remoteP99ms", { max: 10 }],
      [4, "all-emit 100B @40k/s", "lost", { zero: true }],
      [4, "all-emit 100B @40k/s", "emitRate", null],
    ],
  },
  {
    name: "2. primary CPU per delivery ≤ 1/10 of stock (all-emit 40k, fan-out)",
    rows: [
      [4, "all-emit 100B @40k/s", "cpuPrimary", { ratio: 0.1 }],
      [2, "bcast 100B str burst", "cpuPrimary", { ratio: 0.1 }],
      [2, "bcast 10KiB str burst", "cpuPrimary", { ratio: 0.1 }],
      [4, "bcast 100B str burst", "cpuPrimary", { ratio: 0.1 }],
    ],
  },
  {
    name: "3. worker CPU per 10k remote deliveries ≤ 0.6× stock",
    rows: [
      [2, "bcast 100B str burst", "cpuReceivers", { ratio: 0.6 }],
      [2, "bcast 10KiB str burst", "cpuReceivers", { ratio: 0.6 }],
      [4, "bcast 100B str burst", "cpuReceivers", { ratio: 0.6 }],
      [4, "all-emit 100B @40k/s", "cpuWorkers", { ratio: 0.6 }],
    ],
  },
  {
    name: "4. room broadcasts: primary + worker CPU per delivery ≤ 1/5 of stock",
    rows: [
      [2, "rooms 100B str burst", "cpu", { ratio: 0.2 }],
      [4, "rooms 100B str burst", "cpu", { ratio: 0.2 }],
    ],
  },
  {
    name: "5. fetchSockets() p50 ≤ 0.5× stock; primary CPU per 1k requests ≤ 1/10",
    rows: [
      [2, "fetchSockets() all seq", "reqP50ms", { ratio: 0.5 }],
      [2, "fetchSockets() 1 room seq", "reqP50ms", { ratio: 0.5 }],
      [4, "fetchSockets() all seq", "reqP50ms", { ratio: 0.5 }],
      [2, "fetchSockets() all seq", "cpuPrimary", { ratio: 0.1 }],
      [4, "fetchSockets() all ×16", "cpuPrimary", { ratio: 0.1 }],
    ],
  },
  {
    name: "6. SIGKILLed worker: pending requests settle ≤ 50 ms, no failures afterwards",
    rows: [
      [2, "kill: fetchSockets ×8 across SIGSTOP+SIGKILL", "settleAfterKillMs", { max: 50 }],
      [2, "kill: fetchSockets ×8 across SIGSTOP+SIGKILL", "failedAfterKill", { zero: true }],
      [4, "kill: fetchSockets ×8 across SIGSTOP+SIGKILL", "settleAfterKillMs", { max: 50 }],
      [4, "kill: fetchSockets ×8 across SIGSTOP+SIGKILL", "failedAfterKill", { zero: true }],
    ],
  },
  {
    name: "7. 10 KiB Buffers, default serialization: no wrong-typed deliveries",
    rows: [
      [2, "bcast 10KiB buf burst", "wrongType", { zero: true }],
      [4, "bcast 10KiB buf burst", "wrongType", { zero: true }],
    ],
  },
  {
    name: "8. 100 msg/s: adapter hop (remote − local p50) ≤ 0.2 ms",
    rows: [
      [2, "bcast 100B str @100/s", "hopUs", { max: 200 }],
      [4, "bcast 100B str @100/s", "hopUs", { max: 200 }],
    ],
  },
];

/** Primary + workers CPU of a scenario, as one synthetic row. */
function cpuRow(W, scenario) {
  const p = row(W, scenario, "cpuPrimary");
  const w = row(W, scenario, "cpuWorkers");
  if (!p || !w) return null;
  const sum = (a) => p.adapters[a].median + w.adapters[a].median;
  const stock = sum("stock");
  const rs = sum("rs");
  return {
    label: "primary + workers CPU s / 10k deliveries",
    adapters: { stock: { median: stock }, rs: { median: rs } },
    ratio: stock > 0 ? rs / stock : null,
  };
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

function verdict(r, bound) {
  if (!bound) return "";
  const rs = r.adapters.rs.median;
  if (bound.zero) return rs === 0 ? "yes" : "no";
  if (bound.max !== undefined) return rs <= bound.max ? "yes" : "no";
  return r.ratio !== null && r.ratio <= bound.ratio ? "yes" : "no";
}

function boundText(bound) {
  if (!bound) return "";
  if (bound.zero) return "0";
  if (bound.max !== undefined) return `≤ ${bound.max}`;
  return `≤ ×${bound.ratio}`;
}

const out = [];
out.push(`${meta.date.slice(0, 10)} · node ${meta.node} · ${meta.cpus} CPUs · ${meta.platform} · ${meta.reps} rep(s) per adapter` +
  `${meta.quick ? " · --quick" : ""} · stock serialization "${meta.stockSerialization}"`);
out.push("");
out.push("| target | W | scenario | metric | stock | rs | rs/stock | bound | met |");
out.push("|---|---:|---|---|---:|---:|---:|---|---|");
for (const t of TARGETS) {
  t.rows.forEach(([W, scenario, metric, bound], i) => {
    const r = metric === "cpu" ? cpuRow(W, scenario) : row(W, scenario, metric);
    const name = i === 0 ? t.name : "";
    if (!r) {
      out.push(`| ${name} | ${W} | ${scenario} | ${metric} | – | – | – | ${boundText(bound)} | not measured |`);
      return;
    }
    out.push(
      `| ${name} | ${W} | ${scenario} | ${r.label} | ${fmt(r.adapters.stock.median)} | ${fmt(r.adapters.rs.median)} | ` +
        `${r.ratio === null || r.ratio === undefined ? "–" : "×" + fmt(r.ratio)} | ${boundText(bound)} | ${verdict(r, bound)} |`,
    );
  });
}
console.log(out.join("\n"));
