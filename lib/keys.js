"use strict";
// How rooms and namespaces are named at the hub.

const { createHash } = require("node:crypto");

// Longer room and namespace names travel as a digest (see shortKey()).
const MAX_KEY = 256;

/**
 * Rooms are compared by their key at the hub: JSON text, so that the number
 * room 1 and the string room "1" stay different rooms, as they are in the
 * adapter's Map; NaN and the infinities (which JSON writes as null) by name.
 */
function roomKey(room) {
  return shortKey(typeof room === "number" && !Number.isFinite(room) ? String(room) : JSON.stringify(room));
}

/** A namespace's key at the hub (its name, unless very long). */
function nspKey(name) {
  return shortKey(name);
}

/**
 * `text`, or a digest of it when it is long: any room name a client may
 * make a socket join, however long, keeps every frame about it small. JSON
 * keys start with a quote or a digit, namespace names with a slash, so a
 * digest ("#…") never equals a plain key.
 */
function shortKey(text) {
  return text.length <= MAX_KEY ? text : `#${createHash("sha256").update(text).digest("base64")}`;
}

module.exports = { roomKey, nspKey };
