"use strict";
// Turns raw per-run results into medians (min–max) per adapter and a markdown table.

const { summarize, fmt } = require("./stats");

// Which metrics each scenario type reports, in table order. `when` limits a
// metric to the scenarios where it means something.
const METRICS = {
  bcast: [
    ["deliveriesPerSec", "deliveries/s"],
    ["emitRate", "achieved emit rate (msg/s)", (sc) => sc.allEmit],
    ["lost", "lost deliveries"],
    ["wrongType", "wrong-typed deliveries"],
    ["remoteP50ms", "remote latency p50 (ms)"],
    ["remoteP99ms", "remote latency p99 (ms)"],
    ["localP50ms", "local latency p50 (ms)", (sc) => sc.hop],
    ["hopUs", "adapter hop: remote−local p50 (µs)", (sc) => sc.hop],
    ["cpuPrimary", "primary CPU s / 10k deliveries"],
    ["cpuWorkers", "workers CPU s / 10k deliveries"],
    ["cpuReceivers", "receiving workers CPU s / 10k remote deliveries", (sc) => !sc.allEmit],
    ["cpuClients", "client processes CPU s / 10k deliveries (same work for both)"],
    ["rssPrimaryMB", "primary peak RSS (MiB)"],
    ["rssWorkerMaxMB", "largest worker peak RSS (MiB)"],
  ],
  req: [
    ["reqPerSec", "requests/s"],
    ["failed", "failed or incomplete requests"],
    ["reqP50ms", "round trip p50 (ms)"],
    ["reqP99ms", "round trip p99 (ms)"],
    ["cpuPrimary", "primary CPU s / 1k requests"],
    ["cpuWorkers", "workers CPU s / 1k requests"],
    ["rssPrimaryMB", "primary peak RSS (MiB)"],
    ["rssWorkerMaxMB", "largest worker peak RSS (MiB)"],
  ],
  kill: [
    ["pendingAtKill", "requests pending at SIGKILL"],
    ["settleAfterKillMs", "time for those to settle after SIGKILL (ms)"],
    ["failedBeforeKill", "requests failed while SIGSTOPped"],
    ["failedAfterKill", "requests failed in the window after SIGKILL"],
    ["okAfterKill", "requests succeeded in that window"],
    ["lastFailAfterKillMs", "last failure after SIGKILL (ms)"],
    ["unsettledAtEnd", "still pending at the end of the window"],
  ],
};

/**
 * results: [{W, group, scenario, sc, adapter, rep, metrics?, error?}]
 * Returns rows [{W, scenario, metric, label, per adapter {median,min,max,n,errors}, ratio}].
 */
function summarizeResults(results, adapters) {
  const rows = [];
  const keys = [];
  const seen = new Set();
  for (const r of results) {
    const k = `${r.W}|${r.scenario}`;
    if (!seen.has(k)) {
      seen.add(k);
      keys.push(r);
    }
  }
  for (const first of keys) {
    const runs = results.filter((r) => r.W === first.W && r.scenario === first.scenario);
    for (const [key, label, when] of METRICS[first.sc.type]) {
      if (when && !when(first.sc)) continue;
      const row = { W: first.W, group: first.group, scenario: first.scenario, metric: key, label, adapters: {} };
      for (const a of adapters) {
        const mine = runs.filter((r) => r.adapter === a);
        const s = summarize(mine.filter((r) => r.metrics).map((r) => r.metrics[key]));
        row.adapters[a] = { ...(s || {}), errors: mine.filter((r) => r.error).length, runs: mine.length };
      }
      const st = row.adapters.stock;
      const rs = row.adapters.rs;
      row.ratio = st && rs && st.median != null && rs.median != null && st.median !== 0 ? rs.median / st.median : null;
      rows.push(row);
    }
  }
  return rows;
}

function cell(s) {
  if (!s || s.median == null) return s && s.errors ? `ERR (${s.errors}/${s.runs})` : "–";
  let t = fmt(s.median);
  if (s.n > 1 && s.min !== s.max) t += ` (${fmt(s.min)}–${fmt(s.max)})`;
  if (s.errors) t += ` [${s.errors} err]`;
  return t;
}

function markdown(rows, adapters, meta) {
  const out = [];
  out.push(`# socket.io-cluster-rs vs @socket.io/cluster-adapter`);
  out.push("");
  out.push(
    `${meta.date} · node ${meta.node} · ${meta.cpus} CPUs · reps ${meta.reps} · stock serialization "${meta.stockSerialization}" · ` +
      `${meta.quick ? "quick" : "full"} run in ${meta.elapsedSec.toFixed(0)} s`,
  );
  if (meta.interrupted) out.push("", "**Interrupted (SIGINT): partial results.**");
  out.push("");
  out.push("Cells: median over repetitions (min–max). Ratio = rs median / stock median (lower is better for latency, CPU, RSS, losses; higher for rates).");
  const both = adapters.includes("stock") && adapters.includes("rs");
  for (const W of [...new Set(rows.map((r) => r.W))]) {
    out.push("");
    out.push(`## W = ${W} workers`);
    out.push("");
    out.push(`| scenario | metric | ${adapters.join(" | ")} |${both ? " rs/stock |" : ""}`);
    out.push(`|---|---|${adapters.map(() => "---:|").join("")}${both ? "---:|" : ""}`);
    let prev = null;
    for (const r of rows.filter((x) => x.W === W)) {
      const name = r.scenario === prev ? "" : r.scenario;
      prev = r.scenario;
      const ratio = both ? ` ${r.ratio == null ? "–" : "×" + r.ratio.toPrecision(2)} |` : "";
      out.push(`| ${name} | ${r.label} | ${adapters.map((a) => cell(r.adapters[a])).join(" | ")} |${ratio}`);
    }
  }
  return out.join("\n") + "\n";
}

module.exports = { summarizeResults, markdown };
