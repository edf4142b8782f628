"use strict";
// Local broadcasts of one synchronous stretch of code are held together and
// delivered in one microtask, the one where the first of them would have been
// delivered anyway: a client gets them in one write (see lib/held.js). One
// open group for the whole process: namespaces share client connections, so a
// broadcast of another namespace starts a new group, as does any operation
// applied after a microtask (socketsJoin, disconnectSockets...): each group's
// microtask then runs in the order of the calls.

const debug = require("./debug").logger();
const { HeldBroadcasts } = require("./held");
const { kindsOf } = require("./frames");

let openGroup = null;

/**
 * Holds a local broadcast of `adapter` for delivery at the end of the
 * current group; `parts` are its travelling parts (null when it was not
 * published). Returns the promise of the group's delivery.
 */
function holdLocal(adapter, parts, opts, encoded, packetOpts, packet) {
  let group = openGroup;
  if (group === null || group.adapter !== adapter) {
    group = openGroup = { adapter, held: new HeldBroadcasts(adapter), delivered: null };
    group.delivered = Promise.resolve().then(() => {
      if (openGroup === group) openGroup = null;
      try {
        group.held.flush();
      } catch (err) {
        // socket.io does not look at broadcast()'s promise: a rejection would be unhandled.
        debug("error while delivering broadcasts: %s", err && err.stack);
      }
    });
  }
  const held = group.held;
  if (parts === null || packetOpts.volatile) {
    held.addPlain(opts, encoded, packetOpts, () => packet);
    return group.delivered;
  }
  const meta = parts[0];
  const frame = packetOpts.wsPreEncodedFrame || parts.slice(1);
  if (!held.extend(meta, frame, encoded, packet)) {
    held.startRun(meta, opts, packetOpts.compress, kindsOf(encoded), frame, encoded, packet);
  }
  return group.delivered;
}

/** Local broadcasts made from now on are delivered after those held so far. */
function closeLocalGroup() {
  openGroup = null;
}

module.exports = { holdLocal, closeLocalGroup };
