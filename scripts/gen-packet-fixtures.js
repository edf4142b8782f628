#!/usr/bin/env node
"use strict";
// Writes tests/fixtures/socketio-packets.json: packets as a stock
// @socket.io/redis-adapter node publishes them (notepack.io msgpack) and what
// its socket.io-parser Encoder makes of them on receipt, for the Rust codec
// (src/bridge/: packet.rs, msgpack.rs, js.rs, json.rs, ws.rs) to match byte for
// byte.
//
// Each fixture:
// - msgpack: hex of the packet's msgpack (notepack.encode, or hand-built for
//   what notepack.encode cannot write: key orders, non-string keys, exts);
// - parts: new Encoder().encode(notepack.decode(msgpack)), what the adapter
//   hands socket.io (strings as { text }, buffers as { binary: hex });
// - packet_msgpack: hex of notepack.encode of that decoded packet;
// - decoded_msgpack: hex of notepack.encode of the packet socket.io-parser's
//   Decoder reads back from the parts, or null when it refuses them;
// - ws_frames: hex of lib/frames.js's WebSocket frames of the parts.
//
// Run: node scripts/gen-packet-fixtures.js

const fs = require("node:fs");
const path = require("node:path");
const { Encoder, Decoder } = require("socket.io-parser");
const { framesOf } = require("../lib/frames.js");

function requireNotepack() {
  try {
    return require("notepack.io");
  } catch {
    // A dependency of the redis adapter, not necessarily hoisted.
    const from = path.dirname(require.resolve("@socket.io/redis-adapter"));
    return require(require.resolve("notepack.io", { paths: [from] }));
  }
}
const notepack = requireNotepack();

const OUT = path.join(__dirname, "..", "tests", "fixtures", "socketio-packets.json");

// --- hand-built msgpack, for what notepack.encode never writes ---

const enc = (v) => notepack.encode(v);
/** A map from [key, value] pairs, each already msgpack (Buffers). */
function rawMap(entries) {
  if (entries.length >= 16) throw new Error("rawMap: fixmap only");
  return Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flat()]);
}
function rawArray(items) {
  if (items.length >= 16) throw new Error("rawArray: fixarray only");
  return Buffer.concat([Buffer.from([0x90 | items.length]), ...items]);
}
const hex = (s) => Buffer.from(s.replace(/\s+/g, ""), "hex");
/** The adapter's packet object with raw msgpack data. */
function rawPacket(data, nsp = "/", extra = []) {
  return rawMap([
    [enc("type"), enc(2)],
    [enc("data"), data],
    [enc("nsp"), enc(nsp)],
    ...extra,
  ]);
}

// A deterministic spread of doubles: random bit patterns (xorshift), so the
// fixture is the same on every run.
function doubles(count) {
  let x = 0x9e3779b97f4a7c15n;
  const mask = (1n << 64n) - 1n;
  const out = [];
  const view = new DataView(new ArrayBuffer(8));
  while (out.length < count) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    view.setBigUint64(0, x);
    const f = view.getFloat64(0);
    if (Number.isFinite(f)) out.push(f);
  }
  return out;
}
// Doubles of every magnitude JS formats differently (fixed, 0.000ddd, e+/e-).
function scaledDoubles() {
  const out = [];
  for (let e = -330; e <= 310; e += 7) out.push(1.2345678901234567 * 10 ** e, 7 * 10 ** e);
  for (let e = -9; e <= 23; e++) out.push(10 ** e, 1.5 * 10 ** e, -(2 ** 0.5) * 10 ** e);
  return out.filter(Number.isFinite);
}

/** The packet a server emits: keys in socket.io's order (id set by the in-memory adapter). */
const event = (data, nsp = "/", id) => (id === undefined ? { type: 2, data, nsp } : { type: 2, data, nsp, id });
const ack = (data, nsp, id) => ({ type: 3, data, nsp, id });

/** [name, packet object] or [name, Buffer of hand-built msgpack]. */
function cases() {
  const ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32];
  const negatives = [-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1];
  // notepack writes an integral double beyond 2^64 wrapped around: the wire has that.
  const bigInts = [2 ** 53, -(2 ** 53), 2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 40 + 7, -(2 ** 40) - 7];
  const hugeInts = [2 ** 60, 2 ** 63, -(2 ** 63), 1e21, 123456789012345680000, 1.7976931348623157e308];
  const floats = [0.1, 0.2, 0.1 + 0.2, 1.5, -2.5, 1e-7, 1.5e-7, 1e-6, 0.000001234, 2.5e-5, 1 / 3];
  const extremes = [5e-324, -5e-324, 2.2250738585072014e-308, 3.141592653589793, 123.456, -0, NaN, Infinity, -Infinity];
  const dates = [
    new Date("2024-01-02T03:04:05.678Z"), // timestamp 64
    new Date(0), // timestamp 32
    new Date("2024-01-02T03:04:05Z"),
    new Date(-1), // timestamp 96 from here
    new Date("1900-06-15T12:00:00.001Z"),
    new Date("2600-01-01T00:00:00Z"),
    new Date(8.64e15),
    new Date(-8.64e15),
    new Date(-62198755200000), // year -1
    new Date(253402300800000), // year 10000
    new Date(NaN), // written as timestamp 96 zero
    { at: new Date(1e12) },
  ];
  const escapes = [
    'quote " backslash \\ slash / nl \n cr \r tab \t bs \b ff \f',
    "\u0000\u0001\u001f\u007f\u0080\u2028\u2029</script>",
    { 'k"\n': "\u000b" },
  ];
  // JS lists array-index keys first, in numeric order.
  const keyOrder = { b: 1, 2: "two", a: 3, 1: "one", "01": "x", "-1": "neg", "1.5": "frac" };
  keyOrder[4294967295] = "not an index";
  keyOrder[4294967294] = "last index";
  const b = (...bytes) => Buffer.from(bytes);
  return [
    ["event-simple", event(["hello"])],
    ["event-chat-nsp", event(["message", "hi there"], "/chat")],
    ["event-no-args", event(["ping"])],
    ["event-empty-data", event([])],
    ["event-number-name", event([42, "x"])],
    ["unicode", event(["ünïcödé", "日本語テキスト", "👍🏽 👨‍👩‍👧‍👦 🇫🇷", { "clé": "välue", "😀": "😀" }], "/chat")],
    ["escapes", event(["esc", ...escapes])],
    ["long-strings", event(["long", "x".repeat(31), "y".repeat(32), "é".repeat(40), "z".repeat(300)])],
    // notepack writes a lone surrogate oddly (short strings) or as U+FFFD (long ones).
    ["lone-surrogates", event(["lone", "\ud83d", "a\udc00b", "\ud83dx", "w".repeat(40) + "\ud83d"])],
    ["ints", event(["ints", ...ints, ...negatives])],
    ["big-ints", event(["big", ...bigInts, ...hugeInts])],
    ["floats", event(["floats", ...floats, ...extremes])],
    ["floats-spread", event(["spread", ...doubles(150), ...scaledDoubles()])],
    ["nested", event(["nested", { a: { b: { c: [1, [2, [3, { d: null, e: [[[]]] }]]] } }, f: {}, g: [] }, [[["deep"]]]])],
    ["null-bool-undefined", event(["nb", null, true, false, undefined, { u: undefined, n: null, t: true }])],
    ["object-key-order", event(["keys", keyOrder])],
    ["buffer-top", event(["bin", b(1, 2, 3)])],
    ["buffer-empty", event(["bin", Buffer.alloc(0)])],
    ["buffer-large", event(["bin", Buffer.alloc(300, 0xab)], "/chat")],
    ["buffer-nested", event(["bin", { a: [0, { b: Buffer.from("deep") }] }])],
    [
      "buffers-many",
      event(["many", b(0), { x: b(1), y: [b(2), b(3)], 7: b(7) }, b(4), new Uint8Array([5, 5]), new Uint8Array([6]).buffer]),
    ],
    ["buffers-eleven", event(["eleven", ...Array.from({ length: 11 }, (_, i) => b(i))])],
    ["dates", event(["dates", ...dates])],
    ["ack", ack(["ok", 1], "/", 42)],
    ["ack-empty", ack([], "/chat", 0)],
    ["ack-binary", ack([{ file: Buffer.from("abc") }], "/chat", 9007199254740991)],
    ["event-with-id", event(["needs-ack", { n: 1 }], "/chat", 7)],
    ["event-binary-with-id", event(["bin-ack", b(9, 8, 7)], "/", 123)],
    ["nsp-with-digits-and-id", event(["n"], "/room-1", 5)],

    // Hand-built msgpack: what notepack decodes but never writes.
    ["raw-no-nsp", rawMap([[enc("type"), enc(2)], [enc("data"), enc(["x", 1])]])],
    ["raw-key-order-nsp-first", rawMap([[enc("nsp"), enc("/chat")], [enc("data"), enc(["y"])], [enc("type"), enc(2)]])],
    [
      "raw-map-keys",
      rawPacket(
        rawArray([
          enc("keys"),
          rawMap([
            [enc("b"), enc(1)],
            [enc(10), enc("ten")],
            [enc("a"), enc(2)],
            [enc(2), enc("two")],
            [enc("b"), enc("b again")],
            [enc("__proto__"), enc({ evil: 1 })],
            [enc(true), enc("t")],
            [enc(null), enc("n")],
            [enc(1.5), enc("f")],
            [enc("007"), enc("s")],
            [enc(-3), enc("neg")],
            [enc([1, null, ["x", 2]]), enc("arr")],
            [enc({ o: 1 }), enc("obj")],
            [enc(Buffer.from("bk")), enc("buf")],
          ]),
        ]),
      ),
    ],
    [
      "raw-binary-key-order",
      rawPacket(rawArray([enc("bin"), rawMap([[enc("b"), enc(Buffer.from("second"))], [enc(1), enc(Buffer.from("first"))]])])),
    ],
    [
      "raw-dup-undefined",
      // { a: 1, z: 2, a: undefined } (notepack's undefined: fixext 1, type 0), and undefined in an array.
      rawPacket(
        rawArray([enc("u"), rawMap([[enc("a"), enc(1)], [enc("z"), enc(2)], [enc("a"), hex("d4 00 00")]]), hex("d4 00 00")]),
      ),
    ],
    [
      "raw-exts",
      rawPacket(
        rawArray([
          enc("ext"),
          hex("d7 00 00 00 01 00 00 00 00 05"), // legacy Date (fixext 8, type 0)
          hex("c7 03 00 01 02 03"), // legacy ArrayBuffer (ext 8, type 0)
          hex("d5 05 aa bb"), // [5, Buffer]
          hex("d4 ff 01"), // [-1, Buffer]
          hex("d6 ff 65 93 7d 45"), // timestamp 32
          hex("d7 ff 00 00 00 04 00 00 00 00"), // timestamp 64, ns = 1
          hex("c7 0c ff 00 00 00 00 ff ff ff ff ff ff ff ff"), // timestamp 96, -1 s
          hex("c7 0c ff 00 00 00 00 7f ff ff ff 00 00 00 00"), // timestamp 96, invalid date
        ]),
      ),
    ],
    ["raw-float32", rawPacket(rawArray([enc("f32"), hex("ca 3d cc cc cd"), hex("ca 7f 80 00 00"), hex("ca c0 20 00 00")]))],
    [
      "raw-uint64-int64",
      rawPacket(
        rawArray([
          enc("64"),
          hex("cf ff ff ff ff ff ff ff ff"),
          hex("d3 80 00 00 00 00 00 00 00"),
          hex("cf 00 20 00 00 00 00 00 01"),
          hex("d3 ff df ff ff ff ff ff ff"),
        ]),
      ),
    ],
    // Buffer#toString: one U+FFFD per maximal bad sequence.
    [
      "raw-invalid-utf8",
      rawPacket(rawArray([enc("utf8"), hex("a6 61 ff fe e2 82 62"), hex("a4 f0 9f 98 41"), hex("a3 ed a0 80")])),
    ],
    [
      "raw-float-id-and-type",
      rawMap([
        [enc("type"), hex("cb 40 08 00 00 00 00 00 00")], // 3.0
        [enc("data"), enc(["r"])],
        [enc("nsp"), enc("/")],
        [enc("id"), hex("cb 40 14 00 00 00 00 00 00")], // 5.0
      ]),
    ],
  ];
}

const toHex = (b) => Buffer.from(b).toString("hex");

function partsOf(encoded) {
  return encoded.map((e) => (typeof e === "string" ? { text: e } : { binary: toHex(e) }));
}

/** What socket.io-parser's Decoder reads back from the parts, or null. */
function decodeParts(encoded) {
  const decoder = new Decoder({ maxAttachments: 1000 });
  let out = null;
  decoder.on("decoded", (p) => (out = p));
  try {
    for (const e of encoded) decoder.add(e);
  } catch {
    return null;
  }
  return out;
}

function buildFixtures() {
  return cases().map(([name, input]) => {
    const msgpack = Buffer.isBuffer(input) ? input : notepack.encode(input);
    // What the stock adapter does with a message from Redis.
    const packet = notepack.decode(msgpack);
    if (packet.nsp === undefined) packet.nsp = "/";
    const packetMsgpack = notepack.encode(packet);
    const encoded = new Encoder().encode(packet);
    const decoded = decodeParts(encoded);
    return {
      name,
      msgpack: toHex(msgpack),
      parts: partsOf(encoded),
      packet_msgpack: toHex(packetMsgpack),
      decoded_msgpack: decoded === null ? null : toHex(notepack.encode(decoded)),
      ws_frames: toHex(Buffer.concat(framesOf(encoded).map((f) => Buffer.from(f)))),
    };
  });
}

/** Writes the fixtures to `file` as the committed file has them; returns how many. */
function writeFixtures(file = OUT) {
  const fixtures = buildFixtures();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(fixtures, null, 1) + "\n");
  return fixtures.length;
}

if (require.main === module) {
  const n = writeFixtures();
  console.log(`wrote ${n} fixtures to ${path.relative(process.cwd(), OUT)}`);
}

module.exports = { buildFixtures, writeFixtures, OUT };
