"use strict";
// Where the hub socket of a primary lives. Primary and workers must compute the
// same path without talking to each other: `<tmpdir>/socket.io-cluster-rs-<uid>/<primary pid>.sock`,
// and a cluster worker's ppid is its primary. The path is deliberately not
// exported in the environment: every descendant of the primary would inherit
// it, and the workers of an unrelated cluster started from it would join the
// wrong hub. SOCKET_IO_CLUSTER_RS_HUB is only an explicit override by the user.

const fs = require("node:fs");
const os = require("node:os");
const binding = require("./native");

const ENV_VAR = "SOCKET_IO_CLUSTER_RS_HUB";

/** Path for the hub of this process (the primary); creates the 0700 directory. */
function primarySocketPath() {
  return binding.hubSocketPath(os.tmpdir(), process.pid, true);
}

/**
 * Path of the hub this worker should use, or null when there is none (for
 * example under PM2, whose daemon runs the stock primary). Throws when the
 * socket directory exists but is unsafe (wrong owner or mode).
 */
function findHubSocket() {
  const override = process.env[ENV_VAR];
  if (override) return isSocket(override) ? override : null;
  let path;
  try {
    path = binding.hubSocketPath(os.tmpdir(), process.ppid, false);
  } catch (err) {
    if (/No such file|os error 2\b/.test(err.message)) return null;
    throw err;
  }
  return isSocket(path) ? path : null;
}

function isSocket(path) {
  try {
    return fs.statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Removes sockets left behind by primaries that died without cleaning up. */
function removeDeadPrimarySockets(socketPath) {
  const dir = require("node:path").dirname(socketPath);
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^(\d+)\.sock$/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if (err.code === "ESRCH") {
        try {
          fs.unlinkSync(`${dir}/${name}`);
        } catch {
          // Another primary may have removed it first.
        }
      }
    }
  }
}

module.exports = { primarySocketPath, findHubSocket, removeDeadPrimarySockets };
