"use strict";
// index.d.ts must type-check the way users write it against socket.io 4.8.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const path = require("node:path");

const root = path.join(__dirname, "..");

const fixtures = path.join(__dirname, "fixtures", "types");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
const tscArgs = ["--noEmit", "--strict", "--skipLibCheck", "--module", "commonjs", "--target", "es2020", "--types", "node"];

test("index.d.ts type-checks io.adapter(createAdapter()) and new Server({ adapter })", { timeout: 120_000 }, () => {
  execFileSync(process.execPath, [tsc, ...tscArgs, path.join(fixtures, "app.ts")], { cwd: root, stdio: "pipe" });
});

test("a wrong option type is a compile error", { timeout: 120_000 }, () => {
  assert.throws(
    () => execFileSync(process.execPath, [tsc, ...tscArgs, path.join(fixtures, "bad-option.ts")], { cwd: root, stdio: "pipe" }),
    (err) => /bad-option\.ts\(4,\d+\): error TS2322/.test(String(err.stdout)),
  );
});

test("CommonJS require and ESM named imports expose the same functions", () => {
  const out = execFileSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { createAdapter, setupPrimary, createEmitter, NodeClusterAdapter } from "socket.io-cluster-rs";
       import { createRequire } from "node:module";
       const cjs = createRequire(import.meta.url)(${JSON.stringify(root)});
       console.log(JSON.stringify([createAdapter === cjs.createAdapter, setupPrimary === cjs.setupPrimary, createEmitter === cjs.createEmitter, NodeClusterAdapter === cjs.NodeClusterAdapter, typeof createAdapter()]));`,
    ],
    // From the package root, the name resolves to this package (self-reference through "exports").
    { encoding: "utf8", cwd: root },
  );
  assert.deepEqual(JSON.parse(out), [true, true, true, true, "function"]);
});
