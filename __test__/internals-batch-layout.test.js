"use strict";
// The records the addon hands JS (src/batch.rs) are read by lib/batch-decoder.js
// with constants generated from the Rust table: every record type Rust can
// write must decode here to the values Rust's own decoder reads.

const { test } = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const binding = require("../lib/native");
const layout = require("../lib/generated/batch-layout");
const { ErrorCode } = require("../lib/generated/error-codes");
const { decodeBatch } = require("../lib/batch-decoder");

/** A sink that writes down each call as [RECORD_NAME, {field: value}]. */
function recordingSink() {
  const calls = [];
  const sink = { calls, flushes: 0, flushHeld: () => sink.flushes++ };
  for (const record of layout.RECORDS) {
    const method = "on" + record.name.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
    sink[method] = (...args) => {
      const fields = {};
      record.fields.forEach(([name, type], i) => {
        fields[name] = type === "Payload" ? args[i].toString("utf8") : args[i];
      });
      calls.push([record.name, fields]);
    };
  }
  return sink;
}

test("every record type the addon writes decodes to the values Rust wrote", () => {
  const { batch, expected } = binding.sampleBatch();
  const sink = recordingSink();
  decodeBatch(batch, sink);
  assert.deepStrictEqual(sink.calls, JSON.parse(expected));
  const seen = new Set(sink.calls.map(([name]) => name));
  assert.deepStrictEqual(
    [...seen].sort(),
    layout.RECORDS.map((r) => r.name).sort(),
    "the sample covers every record type",
  );
  // Held broadcasts go out before every record but a MESSAGE or an ECHO (this
  // worker's own broadcast, delivered like one), and at the end.
  assert.strictEqual(sink.flushes, sink.calls.filter(([name]) => name !== "MESSAGE" && name !== "ECHO").length + 1);
});

test("a record of an unknown type is skipped, the next one is read", () => {
  const unknown = Buffer.from([250, 3, 0, 0, 0, 1, 2, 3]);
  const up = Buffer.from([layout.UP, 4, 0, 0, 0, 9, 0, 0, 0]);
  const sink = recordingSink();
  decodeBatch(Buffer.concat([unknown, up]), sink);
  assert.deepStrictEqual(sink.calls, [["UP", { node: 9 }]]);
});

test("the addon and the generated files agree", () => {
  assert.strictEqual(binding.batchLayoutDigest(), layout.LAYOUT_DIGEST);
  for (const code of Object.values(ErrorCode)) assert.match(code, /^ERR_SOCKET_IO_CLUSTER_[A-Z_]+$/);
});

test("a hub address that cannot be bound throws with its code", () => {
  const limits = {
    maxFrameSize: 1 << 20,
    queueSoftLimit: 1 << 20,
    queueHardLimit: 1 << 21,
    maxConnections: 64,
    incomingLimit: 1 << 24,
    frameTimeout: 1000,
  };
  // A regular file where the socket should go: the hub does not replace it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rs-"));
  fs.chmodSync(dir, 0o700);
  const file = path.join(dir, "hub.sock");
  fs.writeFileSync(file, "not a socket");
  try {
    assert.throws(
      () => new binding.Hub(file, limits, () => {}),
      (err) => err.code === ErrorCode.ADDRESS && /not a socket/.test(err.message),
    );
    assert.strictEqual(fs.readFileSync(file, "utf8"), "not a socket");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
