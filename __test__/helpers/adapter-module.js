"use strict";
// Which adapter package the suites exercise. Default: this repository (the
// package root). ADAPTER_MODULE=@socket.io/cluster-adapter runs the very same
// suites against the stock package, to check that the tests encode the stock
// semantics; tests of our extras are then reported as skipped with a reason.

const path = require("node:path");

const ROOT = path.join(__dirname, "..", "..");
const requested = process.env.ADAPTER_MODULE || ROOT;

// Resolve from the package root so that a bare name finds ./node_modules and
// a relative path means relative to the repository.
const modulePath = require.resolve(
  path.isAbsolute(requested) || !requested.startsWith(".") ? requested : path.resolve(ROOT, requested),
  { paths: [ROOT] },
);

const isStock = /[\\/]@socket\.io[\\/]cluster-adapter[\\/]/.test(modulePath);

/**
 * `skip` option for a test of a socket.io-cluster-rs extra: a reason string
 * when running against the stock package, `false` otherwise (our package
 * never skips anything).
 */
function oursOnly(reason) {
  return isStock ? `stock @socket.io/cluster-adapter: ${reason}` : false;
}

module.exports = { ROOT, modulePath, isStock, oursOnly };
