#!/usr/bin/env node
"use strict";
// Benchmark driver: `npm run bench` (= node bench/run.js [options]).
//
// For every W and scenario group it starts a fresh cluster per (repetition,
// adapter), alternating stock, rs, stock, rs ... so that slow drift of the
// machine (thermal, page cache, other load) hits both adapters alike. Prints
// a markdown table and writes bench/results/latest.{json,md}.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { ControlServer } = require("./control");
const { startCluster, stopCluster, killLeftovers } = require("./harness");
const { buildGroups, runScenario, warmup } = require("./scenarios");
const { summarizeResults, markdown } = require("./report");

const USAGE = `usage: node bench/run.js [options]
  --quick                    reduced matrix (W=2, 1 rep, short runs; well under 2 min)
  --reps N                   repetitions per adapter (default 3, quick 1)
  --workers 2,4              worker counts (default 2,4, quick 2)
  --adapters stock,rs        adapters to compare, run alternately (default stock,rs)
  --stock-serialization json|advanced   IPC serialization for the stock adapter (default json)
  --only REGEX               only scenarios whose group or id matches
  --client-procs N           client processes (default 2)
  --rs-path PATH             module path of our adapter (default: the package root)
  --out DIR                  results directory (default bench/results)`;

function parseArgs(argv) {
  const o = {
    quick: false, reps: null, workers: null, adapters: ["stock", "rs"], stockSerialization: "json",
    only: null, clientProcs: 2, rsPath: path.resolve(__dirname, ".."), out: path.join(__dirname, "results"),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--reps") o.reps = Number(next());
    else if (a === "--workers") o.workers = next().split(",").map(Number);
    else if (a === "--adapters") o.adapters = next().split(",");
    else if (a === "--stock-serialization") o.stockSerialization = next();
    else if (a === "--only") o.only = new RegExp(next(), "i");
    else if (a === "--client-procs") o.clientProcs = Number(next());
    else if (a === "--rs-path") o.rsPath = path.resolve(next());
    else if (a === "--out") o.out = path.resolve(next());
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  o.reps ??= o.quick ? 1 : 3;
  o.workers ??= o.quick ? [2] : [2, 4];
  if (!["json", "advanced"].includes(o.stockSerialization)) throw new Error("--stock-serialization must be json or advanced");
  if (!(o.reps >= 1) || o.workers.some((w) => !(w >= 2))) throw new Error("--reps must be >= 1 and every W >= 2");
  for (const a of o.adapters) if (!["stock", "rs"].includes(a)) throw new Error(`unknown adapter ${a}`);
  return o;
}

/** Module path per adapter; checked in a child so a broken build cannot take the driver down. */
function resolveAdapters(o) {
  const paths = {
    stock: require.resolve("@socket.io/cluster-adapter", { paths: [path.resolve(__dirname, "..")] }),
    rs: o.rsPath,
  };
  for (const a of o.adapters) {
    const check = `const m = require(${JSON.stringify(paths[a])});
      if (typeof m.setupPrimary !== "function" || typeof m.createAdapter !== "function") throw new Error("missing setupPrimary/createAdapter");`;
    const r = spawnSync(process.execPath, ["-e", check], { encoding: "utf8", timeout: 20_000 });
    if (r.status !== 0) {
      const why = (r.stderr || r.error || "").toString().split("\n").find((l) => /Error/.test(l)) || "exit " + r.status;
      throw new Error(`adapter "${a}" (${paths[a]}) cannot be loaded: ${why.trim()}\n(use --adapters stock to benchmark the stock adapter alone)`);
    }
  }
  return paths;
}

const log = (...a) => console.error("[bench]", ...a);

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const adapterPaths = resolveAdapters(o);
  const t0 = Date.now();
  const ctrl = new ControlServer();
  const ctrlPort = await ctrl.listen();
  const results = [];
  const meta = {
    date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, platform: `${os.type()} ${os.release()}`,
    reps: o.reps, workers: o.workers, adapters: o.adapters, stockSerialization: o.stockSerialization, quick: o.quick,
    clientProcs: o.clientProcs, adapterPaths,
    // The exact scenario definitions, so a JSON file documents what was run.
    groups: Object.fromEntries(o.workers.map((W) => [W, buildGroups(W, o.quick)])),
  };

  const finish = (interrupted) => {
    meta.elapsedSec = (Date.now() - t0) / 1000;
    meta.interrupted = interrupted;
    const rows = summarizeResults(results, o.adapters);
    const md = markdown(rows, o.adapters, meta);
    fs.mkdirSync(o.out, { recursive: true });
    fs.writeFileSync(path.join(o.out, "latest.json"), JSON.stringify({ meta, results: results.map(({ sc, ...r }) => r), summary: rows }, null, 2) + "\n");
    fs.writeFileSync(path.join(o.out, "latest.md"), md);
    return md;
  };
  // Ctrl-C: kill everything we started, keep what was measured so far.
  process.once("SIGINT", () => {
    log(`interrupted; killed ${killLeftovers()} leftover processes`);
    finish(true);
    process.exit(130);
  });

  for (const W of o.workers) {
    for (const group of buildGroups(W, o.quick)) {
      const scenarios = group.scenarios.filter((sc) => !o.only || o.only.test(group.name) || o.only.test(sc.id));
      if (!scenarios.length) continue;
      for (let rep = 1; rep <= o.reps; rep++) {
        for (const adapter of o.adapters) {
          const tg = Date.now();
          const record = (sc, extra) => results.push({ W, group: group.name, scenario: sc.id, sc, adapter, rep, ...extra });
          let cl = null;
          try {
            cl = await startCluster(ctrl, {
              ctrlPort, W, adapterPath: adapterPaths[adapter],
              serialization: adapter === "stock" ? o.stockSerialization : "json",
              clientProcs: o.clientProcs, clientsPerWorker: group.clientsPerWorker, rooms: group.rooms,
              maxLifeMs: 10 * 60_000,
            });
            await warmup(cl, o);
            for (let i = 0; i < scenarios.length; i++) {
              const sc = scenarios[i];
              try {
                record(sc, { metrics: await runScenario(cl, sc, o) });
              } catch (e) {
                // The cluster's state is unknown now: skip the rest of this group's run.
                record(sc, { error: String(e.message || e) });
                for (const rest of scenarios.slice(i + 1)) record(rest, { error: "skipped after an earlier error" });
                log(`W=${W} ${group.name} ${adapter} rep ${rep}: ${sc.id}: ${e.message}`);
                break;
              }
            }
          } catch (e) {
            log(`W=${W} ${group.name} ${adapter} rep ${rep}: cluster failed: ${e.message}`);
            for (const sc of scenarios) if (!results.some((r) => r.W === W && r.adapter === adapter && r.rep === rep && r.scenario === sc.id)) record(sc, { error: String(e.message) });
          } finally {
            if (cl) await stopCluster(ctrl, cl);
          }
          log(`W=${W} ${group.name.padEnd(14)} rep ${rep}/${o.reps} ${adapter.padEnd(5)} ${((Date.now() - tg) / 1000).toFixed(1)} s (total ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
        }
      }
    }
  }
  ctrl.close();
  const left = killLeftovers();
  if (left) log(`killed ${left} leftover processes`);
  process.stdout.write(finish(false));
  log(`wrote ${path.relative(process.cwd(), path.join(o.out, "latest.md"))} and latest.json`);
}

main().catch((e) => {
  console.error(e.message || e);
  killLeftovers();
  process.exit(2);
});
