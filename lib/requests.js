"use strict";
// The adapter's side of cluster-wide requests: tallying the answers of other
// workers, and answering theirs.

const debug = require("./debug").logger();
const { pack, packLenient, unpack, splitParts } = require("./codec");

function timeoutError(missing) {
  return new Error(`timeout reached: missing ${missing} responses`);
}

/**
 * partialResults mode: the answers that arrived, marked as incomplete, with
 * the process ids of the workers that did not answer in time.
 */
function markPartial(results, pids) {
  const missing = pids || [];
  // An Array subclass rather than properties on the array: socket.io's
  // fetchSockets() maps the adapter's answer into RemoteSockets, and map()
  // builds its result with the species of the array it maps, so the marks
  // survive into what the application gets.
  class PartialResults extends Array {
    get incomplete() {
      return true;
    }

    get missing() {
      return missing;
    }
  }
  return PartialResults.from(results);
}

/** Packs `value`, or `fallback` when it cannot be sent (logged, never thrown). */
function safePack(value, fallback) {
  try {
    return pack(value);
  } catch (err) {
    debug("cannot send value to another worker: %s", err.message);
    return pack(fallback);
  }
}

/**
 * The request handler of a broadcastWithAck(): each worker answers with its
 * client count (`{c}`), then one reply per ack (`{a}`). Client counts are
 * reported to socket.io per node only once all of that node's acks arrived,
 * so that a node dying half-way is settled with the acks it did deliver
 * instead of leaving the emit waiting for its timeout.
 */
function ackTally(clientCountCallback, ack, resolveServerCount) {
  const nodes = new Map(); // node → { count, acks, reported }
  const report = (st, n) => {
    if (st.reported) return;
    st.reported = true;
    clientCountCallback(n);
  };
  return {
    accepted: (expected) => resolveServerCount(1 + expected),
    reply: (from, payload) => {
      const msg = unpack(splitParts(payload)[0]);
      let st = nodes.get(from);
      if (!st) {
        st = { count: 0, acks: 0, reported: false };
        nodes.set(from, st);
      }
      if (msg.c !== undefined) {
        st.count = msg.c;
        if (st.acks >= st.count) report(st, st.count);
      } else {
        // A node already settled (it was dropped while its event loop was
        // blocked, then came back) is not counted again: socket.io
        // completes the emit only when the acks match the counts exactly.
        if (st.reported) return;
        st.acks++;
        ack(msg.a);
        if (st.acks >= st.count && st.count > 0) report(st, st.count);
      }
    },
    departed: (node) => {
      const st = nodes.get(node);
      if (!st) {
        nodes.set(node, { count: 0, acks: 0, reported: true });
        clientCountCallback(0);
      } else report(st, st.acks);
    },
    down: () => resolveServerCount(1),
  };
}

/**
 * The two callbacks with which this worker answers another's
 * broadcastWithAck() request `id`: its client count, then each ack.
 */
function ackAnswers(link, id) {
  let expected = -1;
  let acks = 0;
  return {
    clientCount: (count) => {
      expected = count;
      link.respond(id, count === 0, [pack({ c: count })]);
    },
    ack: (arg) => {
      acks++;
      link.respond(id, acks === expected, [safePack({ a: arg }, { a: null })]);
    },
  };
}

/** The answer callback of another worker's serverSideEmitWithAck() request `id`. */
function serverSideAnswer(link, id) {
  let called = false;
  return (arg) => {
    // Only the first call and its first argument count, as in the stock adapter.
    if (called) return;
    called = true;
    link.respond(id, true, [safePack(arg, null)]);
  };
}

/**
 * Answers fetchSockets request `id` with `sockets`, in as many frames as it
 * takes: one when the answer fits (the usual case), halves of it otherwise.
 * A single socket too large for any frame is left out, and the last frame
 * says how many were, and by whom, so that the requester's result is marked
 * incomplete instead of silently short.
 */
function respondWithSockets(link, id, sockets) {
  const details = sockets.map((socket) => {
    // sessionStore may hold circular references (express-session).
    const { sessionStore, ...handshake } = socket.handshake;
    return { id: socket.id, handshake, rooms: [...socket.rooms], data: socket.data };
  });
  const budget = link.maxPayload();
  const chunks = [];
  let leftOut = 0;
  const split = (list) => {
    // A value that cannot be sent arrives as null, the rest of the socket intact.
    const packed = packLenient(list);
    if (packed.length <= budget) chunks.push(packed);
    else if (list.length === 1) leftOut++;
    else {
      split(list.slice(0, list.length >> 1));
      split(list.slice(list.length >> 1));
    }
  };
  split(details);
  if (leftOut > 0) debug("%d socket(s) too large for maxFrameSize left out of a fetchSockets() answer", leftOut);
  const last = leftOut > 0 ? [pack({ leftOut, pid: process.pid })] : [];
  if (chunks.length === 0) return link.respond(id, true, [pack([]), ...last]);
  chunks.forEach((chunk, i) => link.respond(id, i === chunks.length - 1, i === chunks.length - 1 ? [chunk, ...last] : [chunk]));
}

/**
 * The request handler of a fetchSockets(): collects the sockets of every
 * answer into `sockets` and settles with them; a worker whose answer left
 * sockets out, or that did not answer in time (with `partialResults`),
 * marks the result incomplete.
 */
function socketsTally(sockets, partialResults, resolve, reject) {
  // Workers whose answer left sockets out (too large for maxFrameSize).
  const short = [];
  return {
    reply: (from, payload) => {
      const p = splitParts(payload);
      if (p.length) for (const s of unpack(p[0])) sockets.push(s);
      if (p.length > 1) short.push(unpack(p[1]));
    },
    done: () => {
      if (short.length === 0) return resolve(sockets);
      const n = short.reduce((sum, s) => sum + s.leftOut, 0);
      debug("fetchSockets(): %d socket(s) too large for maxFrameSize were left out", n);
      resolve(markPartial(sockets, short.map((s) => s.pid)));
    },
    timedOut: (missing, pids) => (partialResults ? resolve(markPartial(sockets, pids)) : reject(timeoutError(missing))),
    down: (reason) => reject(new Error(`socket.io-cluster-rs: fetchSockets failed: ${reason}`)),
  };
}

/** The request handler of a serverSideEmitWithAck(): collects each answer and calls `ack` once. */
function serverSideTally(partialResults, ack) {
  const responses = [];
  return {
    reply: (from, payload) => {
      const p = splitParts(payload);
      if (p.length) responses.push(unpack(p[0]));
    },
    done: () => ack(null, responses),
    timedOut: (missing, pids) =>
      partialResults ? ack(null, markPartial(responses, pids)) : ack(timeoutError(missing), responses),
    down: (reason) => ack(new Error(`socket.io-cluster-rs: serverSideEmit failed: ${reason}`), responses),
  };
}

/**
 * A worker's answer to a room query: the size of `q.room` here, or (no
 * room) the rooms sockets joined here, without each socket's own room.
 */
function roomAnswer(adapter, q) {
  if (q.room !== undefined) {
    const members = adapter.rooms.get(q.room);
    return members ? members.size : 0;
  }
  const rooms = [];
  for (const room of adapter.rooms.keys()) if (!adapter.sids.has(room)) rooms.push(room);
  return rooms;
}

/**
 * The request handler of allRooms() (`merge` collects room lists into a
 * Set) or roomSize() (sums the counts), started from the asker's own part.
 */
function roomTally(initial, partialResults, resolve, reject) {
  let result = initial;
  const add = (answer) => {
    if (result instanceof Set) for (const room of answer) result.add(room);
    else result += answer;
  };
  return {
    reply: (from, payload) => {
      const p = splitParts(payload);
      if (p.length) add(unpack(p[0]));
    },
    done: () => resolve(result),
    timedOut: (missing) => (partialResults ? resolve(result) : reject(timeoutError(missing))),
    down: (reason) => reject(new Error(`socket.io-cluster-rs: room query failed: ${reason}`)),
  };
}

module.exports = { roomAnswer, roomTally, ackTally, ackAnswers, serverSideAnswer, respondWithSockets, socketsTally, serverSideTally };
