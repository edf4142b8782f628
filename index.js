"use strict";
// socket.io-cluster-rs: drop-in replacement for @socket.io/cluster-adapter.
//
//   primary:  const { setupPrimary } = require("socket.io-cluster-rs"); setupPrimary();
//   worker:   const { createAdapter } = require("socket.io-cluster-rs"); io.adapter(createAdapter());
//   elsewhere: setupPrimary().emitter, or createEmitter({ primaryPid }) in another process.

const { resolveOptions } = require("./lib/options");
const { NodeClusterAdapter } = require("./lib/adapter");
const { setupPrimary } = require("./lib/primary");
const { createEmitter } = require("./lib/emitter");

/**
 * Returns the adapter constructor to pass to `io.adapter()` or to
 * `new Server({ adapter })`. Options are validated here: a wrong type is a
 * TypeError now, not a misbehaving cluster later.
 */
function createAdapter(opts) {
  const resolved = resolveOptions(opts);
  // A plain function on purpose: socket.io calls it with `new`, and a function
  // that returns an object yields that object.
  return function (nsp) {
    return new NodeClusterAdapter(nsp, resolved);
  };
}

module.exports = { createAdapter, setupPrimary, createEmitter, NodeClusterAdapter };
