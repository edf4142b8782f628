"use strict";
// Where the hub of a primary listens. Primary and workers compute the same
// address without talking to each other, from the primary's pid (a cluster
// worker's ppid): on Linux the abstract socket name
// `@socket.io-cluster-rs-<uid>-<pid>` (no file, nothing to clean up, no
// directory another user could take first), elsewhere
// `<tmpdir>/socket.io-cluster-rs-<uid>/<pid>.sock` in a 0700 directory (see
// src/paths.rs). The address is deliberately not exported in the
// environment: every descendant of the primary would inherit it, and the
// workers of an unrelated cluster started from it would join the wrong hub.
// SOCKET_IO_CLUSTER_RS_HUB is only an explicit override by the user.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const binding = require("./native");

const ENV_VAR = "SOCKET_IO_CLUSTER_RS_HUB";

/** Address for the hub of this process (the primary); throws when it cannot have one. */
function primaryHubAddress() {
  return binding.hubAddress(os.tmpdir(), process.pid, true);
}

/**
 * Address of the hub this worker should use, or null when there is none
 * usable: no hub of ours (for example under PM2, whose daemon runs the stock
 * primary), or one this user must not trust (another user took its address
 * or its directory); `warn` then hears why, once.
 */
function findHub(warn) {
  let address = process.env[ENV_VAR];
  if (!address) {
    try {
      address = binding.hubAddress(os.tmpdir(), process.ppid, false);
    } catch (err) {
      warn(err.message);
      return null;
    }
    // No socket directory: no hub of ours.
    if (address === null) return null;
  }
  const state = binding.probeHub(address);
  if (state === "up") return address;
  if (state !== "absent") warn(state);
  return null;
}

/** Removes socket files left behind by primaries that died without cleaning up. */
function removeDeadPrimarySockets(address) {
  if (address.startsWith("@")) return;
  const dir = path.dirname(address);
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

module.exports = { primaryHubAddress, findHub, removeDeadPrimarySockets };
