"use strict";
// Loads the compiled addon with an error that says what to do when it is missing.

let binding;
try {
  binding = require("../binding.js");
} catch (err) {
  const e = new Error(
    "socket.io-cluster-rs: the native addon could not be loaded. " +
      "It is built from source by `npm install` (needs the Rust toolchain); " +
      `run \`npm run build\` in the package directory. Cause: ${err.message}`,
  );
  e.cause = err;
  throw e;
}

module.exports = binding;
