"use strict";
// The package's debug loggers. Each logs under its own namespace
// ("socket.io-cluster-rs", "socket.io-cluster-rs:link", ...) or, when only
// the stock package's namespace is enabled (DEBUG=socket.io-cluster-adapter,
// which users of @socket.io/cluster-adapter already have), under that one:
// filters written for the stock package keep showing the adapter's logs.

const createDebug = require("debug");

const STOCK = "socket.io-cluster-adapter";

/** A debug logger for `socket.io-cluster-rs` (or `socket.io-cluster-rs:<sub>`). */
function logger(sub) {
  const own = createDebug(sub ? `socket.io-cluster-rs:${sub}` : "socket.io-cluster-rs");
  const stock = createDebug(STOCK);
  function log(...args) {
    if (own.enabled) own(...args);
    else if (stock.enabled) stock(...args);
  }
  Object.defineProperty(log, "enabled", { get: () => own.enabled || stock.enabled });
  return log;
}

module.exports = { logger };
