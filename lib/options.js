"use strict";
// Options of createAdapter(): validated once, at createAdapter() time, so a
// typo fails loudly at start-up instead of misbehaving under load.

const { inspect } = require("node:util");

const DEFAULTS = Object.freeze({
  heartbeatInterval: 5_000,
  heartbeatTimeout: 10_000,
  requestsTimeout: 5_000,
  maxFrameSize: 64 * 1024 * 1024,
  queueSoftLimit: 32 * 1024 * 1024,
  queueHardLimit: 128 * 1024 * 1024,
});

// The frame length travels as a u32 on the wire.
const MAX_FRAME_LIMIT = 0xffff_ffff;
// Room and namespace announcements must always fit (long names travel as
// digests of a few dozen bytes, see lib/link.js).
const MIN_FRAME_LIMIT = 4096;

/**
 * Returns a complete, frozen options object. `undefined` (or a missing key)
 * means the default — unlike @socket.io/cluster-adapter, where an explicit
 * `undefined` produced a ~1 ms heartbeat timer.
 */
function resolveOptions(opts) {
  if (opts === undefined || opts === null) opts = {};
  if (typeof opts !== "object") {
    throw new TypeError(
      `socket.io-cluster-rs: options must be an object, got ${inspect(opts)}`,
    );
  }
  const out = {};
  for (const [key, def] of Object.entries(DEFAULTS)) {
    const value = opts[key];
    if (value === undefined) {
      out[key] = def;
      continue;
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new TypeError(
        `socket.io-cluster-rs: option "${key}" must be a positive finite number, got ${inspect(value)}`,
      );
    }
    out[key] = value;
  }
  if (opts.partialResults !== undefined && typeof opts.partialResults !== "boolean") {
    throw new TypeError(
      `socket.io-cluster-rs: option "partialResults" must be a boolean, got ${inspect(opts.partialResults)}`,
    );
  }
  out.partialResults = opts.partialResults === true;
  if (!Number.isInteger(out.maxFrameSize) || out.maxFrameSize < MIN_FRAME_LIMIT || out.maxFrameSize > MAX_FRAME_LIMIT) {
    throw new TypeError(
      `socket.io-cluster-rs: option "maxFrameSize" must be an integer from ${MIN_FRAME_LIMIT} to ${MAX_FRAME_LIMIT} bytes, got ${inspect(opts.maxFrameSize)}`,
    );
  }
  for (const key of ["queueSoftLimit", "queueHardLimit"]) {
    if (!Number.isInteger(out[key])) {
      throw new TypeError(`socket.io-cluster-rs: option "${key}" must be an integer number of bytes, got ${inspect(opts[key])}`);
    }
  }
  if (out.queueSoftLimit > out.queueHardLimit) {
    throw new TypeError("socket.io-cluster-rs: option queueSoftLimit must not exceed queueHardLimit");
  }
  for (const key of ["heartbeatInterval", "heartbeatTimeout", "requestsTimeout"]) {
    // Timers and the wire carry milliseconds as u32.
    out[key] = Math.min(Math.ceil(out[key]), MAX_FRAME_LIMIT);
  }
  return Object.freeze(out);
}

const PRIMARY_DEFAULTS = Object.freeze({
  maxFrameSize: DEFAULTS.maxFrameSize,
  queueSoftLimit: DEFAULTS.queueSoftLimit,
  queueHardLimit: DEFAULTS.queueHardLimit,
  maxConnections: 1024,
  incomingLimit: 128 * 1024 * 1024,
  frameTimeout: 10_000,
  // Connection state recovery (docs/recovery.md): broadcasts and bytes kept
  // per namespace, sessions kept.
  recoveryMaxPackets: 100_000,
  recoveryMaxBytes: 64 * 1024 * 1024,
  recoveryMaxSessions: 100_000,
});

/** Options of setupPrimary(): limits of the hub (bytes, connections, ms). */
function resolvePrimaryOptions(opts) {
  if (opts === undefined || opts === null) opts = {};
  if (typeof opts !== "object") {
    throw new TypeError(`socket.io-cluster-rs: setupPrimary() options must be an object, got ${inspect(opts)}`);
  }
  const out = {};
  for (const [key, def] of Object.entries(PRIMARY_DEFAULTS)) {
    const value = opts[key] === undefined ? def : opts[key];
    if (!Number.isInteger(value) || value <= 0) {
      throw new TypeError(
        `socket.io-cluster-rs: setupPrimary() option "${key}" must be a positive integer, got ${inspect(opts[key])}`,
      );
    }
    if (key === "maxFrameSize" && (value < MIN_FRAME_LIMIT || value > MAX_FRAME_LIMIT)) {
      throw new TypeError(
        `socket.io-cluster-rs: setupPrimary() option "maxFrameSize" must be from ${MIN_FRAME_LIMIT} to ${MAX_FRAME_LIMIT} bytes, got ${inspect(value)}`,
      );
    }
    out[key] = value;
  }
  if (out.queueSoftLimit > out.queueHardLimit) {
    throw new TypeError("socket.io-cluster-rs: setupPrimary() option queueSoftLimit must not exceed queueHardLimit");
  }
  for (const key of ["maxConnections", "frameTimeout"]) {
    // Carried as u32.
    if (out[key] > MAX_FRAME_LIMIT) throw new TypeError(`socket.io-cluster-rs: setupPrimary() option "${key}" is too large`);
  }
  out.sticky = resolveStickyOptions(opts.sticky);
  // Absent rather than null: the addon reads a missing object as "none".
  const redis = resolveRedisOptions(opts.redis);
  if (redis) out.redis = redis;
  return Object.freeze(out);
}

/**
 * setupPrimary()'s `redis` option (docs/redis.md): null when absent, else
 * what the addon's Hub takes. The URL's syntax is checked by the addon.
 */
function resolveRedisOptions(redis) {
  if (redis === undefined || redis === null || redis === false) return null;
  const bad = (what, value) => new TypeError(`socket.io-cluster-rs: setupPrimary() option "redis${what}" ${value}`);
  if (typeof redis !== "object") throw bad("", `must be an object such as { url: "redis://127.0.0.1:6379" }, got ${inspect(redis)}`);
  const { url, key = "socket.io", requestsTimeout = 5000 } = redis;
  if (typeof url !== "string" || !/^(redis|redis\+unix|unix):\/\//.test(url)) {
    throw bad(".url", `must be a redis:// (or unix://) URL (TLS: see docs/redis.md), got ${inspect(url)}`);
  }
  if (typeof key !== "string" || key === "") throw bad(".key", `must be a non-empty string, got ${inspect(key)}`);
  if (!Number.isInteger(requestsTimeout) || requestsTimeout <= 0 || requestsTimeout > MAX_FRAME_LIMIT) {
    throw bad(".requestsTimeout", `must be a positive integer (milliseconds), got ${inspect(requestsTimeout)}`);
  }
  return { url, key, requestsTimeout };
}

const STICKY_DEFAULTS = Object.freeze({
  maxHeaderSize: 16 * 1024,
  headersTimeout: 10_000,
  maxPendingConnections: 1024,
});
const BALANCES = ["least-connections", "ip-hash"];

/**
 * setupPrimary()'s `sticky` option (docs/sticky.md): null when absent, else
 * what the addon's Balancer takes.
 */
function resolveStickyOptions(sticky) {
  if (sticky === undefined || sticky === null || sticky === false) return null;
  const bad = (what, value) =>
    new TypeError(`socket.io-cluster-rs: setupPrimary() option "sticky${what}" ${value}`);
  if (typeof sticky !== "object") throw bad("", `must be an object such as { port: 3000 }, got ${inspect(sticky)}`);
  const { port, host = "", balance = "least-connections", ipHeader = "" } = sticky;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw bad(".port", `must be an integer from 0 to 65535, got ${inspect(port)}`);
  }
  if (typeof host !== "string") throw bad(".host", `must be a string, got ${inspect(host)}`);
  if (!BALANCES.includes(balance)) throw bad(".balance", `must be one of ${BALANCES.join(", ")}, got ${inspect(balance)}`);
  if (typeof ipHeader !== "string" || /[^A-Za-z0-9!#$%&'*+.^_`|~-]/.test(ipHeader)) {
    throw bad(".ipHeader", `must be a header name, got ${inspect(ipHeader)}`);
  }
  const out = { host, port, balance, ipHeader: ipHeader.toLowerCase() };
  for (const [key, def] of Object.entries(STICKY_DEFAULTS)) {
    const value = sticky[key] === undefined ? def : sticky[key];
    if (!Number.isInteger(value) || value <= 0 || value > MAX_FRAME_LIMIT) {
      throw bad(`.${key}`, `must be a positive integer, got ${inspect(sticky[key])}`);
    }
    out[key] = value;
  }
  return Object.freeze(out);
}

module.exports = { resolveOptions, resolvePrimaryOptions, DEFAULTS, PRIMARY_DEFAULTS, STICKY_DEFAULTS };
