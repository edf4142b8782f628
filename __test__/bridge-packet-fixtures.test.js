"use strict";
// src/bridge/packet.rs tests the Rust codec (packet.rs, msgpack.rs, js.rs,
// json.rs, ws.rs) against tests/fixtures/socketio-packets.json: what
// notepack.io and socket.io-parser make of sample packets. Regenerating
// the fixtures must give the committed file, so that the Rust codec is always
// checked against what the installed JS really produces (an upgrade that
// changes the wire fails here; rerun scripts/gen-packet-fixtures.js then).

const { test } = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { writeFixtures, OUT } = require("../scripts/gen-packet-fixtures.js");

test("the committed packet fixtures are what socket.io-parser and notepack.io produce", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "packet-fixtures-"));
  try {
    const file = path.join(dir, "socketio-packets.json");
    const count = writeFixtures(file);
    assert.ok(count >= 30, `only ${count} fixtures`);
    const fresh = fs.readFileSync(file, "utf8");
    const committed = fs.readFileSync(OUT, "utf8");
    const freshList = JSON.parse(fresh);
    const committedList = JSON.parse(committed);
    assert.deepStrictEqual(
      freshList.map((f) => f.name),
      committedList.map((f) => f.name),
    );
    for (let i = 0; i < freshList.length; i++) {
      assert.deepStrictEqual(freshList[i], committedList[i], `fixture ${freshList[i].name}`);
    }
    assert.strictEqual(fresh, committed, "same content, different formatting");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the fixtures cover both namespaces, acks, attachments and dates", () => {
  const fixtures = JSON.parse(fs.readFileSync(OUT, "utf8"));
  const texts = fixtures.map((f) => f.parts[0].text);
  assert.ok(texts.some((t) => t.startsWith("2[")), "EVENT on /");
  assert.ok(texts.some((t) => t.startsWith("2/chat,")), "EVENT on /chat");
  assert.ok(texts.some((t) => /^3\d+\[/.test(t)), "ACK with an id");
  assert.ok(texts.some((t) => /^6\d+-/.test(t)), "BINARY_ACK");
  assert.ok(fixtures.some((f) => f.parts.filter((p) => p.binary !== undefined).length > 5), "many attachments");
  assert.ok(texts.some((t) => t.includes('"2024-01-02T03:04:05.678Z"')), "a Date");
});
