"use strict";
// setupPrimary({ redis }) refuses what it cannot use with a TypeError that
// names the option, before anything starts.

const { it } = require("node:test");
const assert = require("node:assert/strict");
const { setupPrimary } = require("..");

const bad = [
  [{ redis: "redis://127.0.0.1" }, /option "redis" must be an object/],
  [{ redis: {} }, /option "redis\.url" must be a redis:\/\//],
  [{ redis: { url: "http://127.0.0.1:6379" } }, /option "redis\.url" must be a redis:\/\//],
  [{ redis: { url: "redis://127.0.0.1:notaport" } }, /option "redis\.url" is not usable/],
  [{ redis: { url: "redis://127.0.0.1", key: "" } }, /option "redis\.key" must be a non-empty string/],
  [{ redis: { url: "redis://127.0.0.1", key: 7 } }, /option "redis\.key"/],
  [{ redis: { url: "redis://127.0.0.1", requestsTimeout: 0 } }, /option "redis\.requestsTimeout" must be a positive integer/],
  [{ redis: { url: "redis://127.0.0.1", requestsTimeout: 1.5 } }, /option "redis\.requestsTimeout"/],
];

for (const [opts, message] of bad) {
  it(`setupPrimary(${JSON.stringify(opts)}) throws a TypeError`, () => {
    assert.throws(() => setupPrimary(opts), (err) => err instanceof TypeError && message.test(err.message));
  });
}
