"use strict";
// Broadcasts held to be written together. Engine.IO writes every packet to a
// WebSocket with its own syscall, the largest per-message cost of a busy
// worker; broadcasts held here reach a client that takes precomputed frames
// in one write, whatever rooms they target, still as one WebSocket message
// each and in order. Other clients (polling, per-message deflate,
// `onAnyOutgoing` listeners) get them one by one, as usual.
//
// Remote broadcasts are held until the end of the link's batch, local ones
// until the microtask where Socket.IO would have delivered them anyway.
// A held message is its frame list (see lib/frames.js).

const { encodedOf, asWsFrame } = require("./frames");
const { hasOutgoingListeners, notifyOutgoing, writeEncoded, takesFrames } = require("./socketio-internals");

/** An ordered list of held broadcasts of one namespace. */
class HeldBroadcasts {
  /** @param adapter - the namespace's adapter (for apply(), _deliver(), _decodePacket()) */
  constructor(adapter) {
    this._adapter = adapter;
    // Runs (consecutive messages with the same targets and flags, whose
    // targets are resolved once) and plain entries (volatile broadcasts, and
    // local ones that were not published), in the order they were added.
    this._entries = [];
    this._run = null; // the last entry, when it is a run
  }

  /**
   * Adds `frame` to the last run when `meta` (targets and flags, as sent
   * between workers) is the same as that run's; false when it is not.
   * `encoded` and `packet` are known for local broadcasts only.
   */
  extend(meta, frame, encoded, packet) {
    const run = this._run;
    if (run === null || !(run.meta === meta || run.meta.equals(meta))) return false;
    run.frames.push(frame);
    if (run.encoded !== null) {
      run.encoded.push(encoded);
      run.packets.push(packet);
    }
    return true;
  }

  /**
   * Starts a run of messages for `opts` (not volatile: a volatile packet is
   * plain) whose encoder output has the parts `kinds` ("s"/"b" each).
   */
  startRun(meta, opts, compress, kinds, frame, encoded, packet) {
    const local = encoded !== undefined;
    this._run = {
      meta,
      opts,
      compress,
      kinds,
      frames: [frame],
      encoded: local ? [encoded] : null,
      packets: local ? [packet] : null,
    };
    this._entries.push(this._run);
  }

  /** Keeps a broadcast that is written as usual in its place in the order. */
  addPlain(opts, encoded, packetOpts, getPacket) {
    this._run = null;
    this._entries.push({ frames: null, opts, encoded, packetOpts, getPacket });
  }

  /** Writes everything held, in order. */
  flush() {
    const entries = this._entries;
    if (entries.length === 0) return;
    this._entries = [];
    this._run = null;
    let runs = [];
    for (const e of entries) {
      if (e.frames === null) {
        this._writeRuns(runs);
        runs = [];
        this._adapter._deliver(e.opts, e.encoded, e.packetOpts, e.getPacket);
        continue;
      }
      // One write carries one compress flag.
      if (runs.length > 0 && runs[0].compress !== e.compress) {
        this._writeRuns(runs);
        runs = [];
      }
      runs.push(e);
    }
    this._writeRuns(runs);
  }

  _writeRuns(runs) {
    if (runs.length === 1) this._writeRun(runs[0]);
    else if (runs.length > 1) this._writeMany(runs);
  }

  /** One run: what is written is the same for every socket, made once and shared. */
  _writeRun(run) {
    const { frames, compress } = run;
    // One text message is one frame already; anything else is combined.
    const combine = frames.length > 1 || run.kinds !== "s";
    let combined = null;
    let oneByOne = null;
    this._adapter.apply(run.opts, (socket) => {
      if (combine && takesFrames(socket) && !hasOutgoingListeners(socket)) {
        combined ??= {
          encoded: lastPart(run),
          opts: { preEncoded: true, compress, wsPreEncodedFrame: asWsFrame(frames.flat()) },
        };
        writeEncoded(socket, combined.encoded, combined.opts);
        return;
      }
      oneByOne ??= packetsOf(run);
      this._writeOneByOne(socket, run, oneByOne);
    });
  }

  /** Runs for different targets: each socket gets its messages of all of them in one write. */
  _writeMany(runs) {
    // socket → { frames: frame lists in order, count, last: run with its last frame }
    const held = new Map();
    for (const r of runs) {
      let oneByOne = null;
      this._adapter.apply(r.opts, (socket) => {
        const h = held.get(socket);
        if (h !== undefined) {
          h.frames.push(r.frames);
          h.count += r.frames.length;
          h.last = r;
          return;
        }
        if (takesFrames(socket) && !hasOutgoingListeners(socket)) {
          held.set(socket, { frames: [r.frames], count: r.frames.length, last: r });
          return;
        }
        // Nothing is ever held for such a socket: writing now keeps its order.
        oneByOne ??= packetsOf(r);
        this._writeOneByOne(socket, r, oneByOne);
      });
    }
    const compress = runs[0].compress;
    for (const [socket, h] of held) {
      const last = h.last;
      last.text ??= lastPart(last);
      const frame = asWsFrame(h.frames.flat(2));
      writeEncoded(socket, last.text, { preEncoded: true, compress, wsPreEncodedFrame: frame });
    }
  }

  _writeOneByOne(socket, run, packets) {
    const listened = hasOutgoingListeners(socket);
    for (let i = 0; i < packets.length; i++) {
      const { encoded, opts } = packets[i];
      if (listened) {
        const packet = run.packets !== null ? run.packets[i] : this._adapter._decodePacket(encoded);
        notifyOutgoing(socket, packet);
      }
      writeEncoded(socket, encoded, opts);
    }
  }
}

/** The encoder output of a run's i-th message. */
function encodedAt(run, i) {
  return run.encoded !== null ? run.encoded[i] : encodedOf(run.frames[i], run.kinds);
}

/**
 * What is passed along with a combined frame: one part, so that Socket.IO
 * writes the frame once. It only matters to a transport that encodes packets
 * itself, which takesFrames() rules out: the last message's first part
 * stands for all.
 */
function lastPart(run) {
  const encoded = encodedAt(run, run.frames.length - 1);
  return encoded.length === 1 ? encoded : [encoded[0]];
}

/**
 * A run's messages as packets written one by one. A text message keeps its
 * frame; any other is written part by part by Engine.IO, which frames each.
 */
function packetsOf(run) {
  const text = run.kinds === "s";
  return run.frames.map((frame, i) => ({
    encoded: encodedAt(run, i),
    opts: text ? { preEncoded: true, compress: run.compress, wsPreEncodedFrame: frame } : { preEncoded: true, compress: run.compress },
  }));
}

module.exports = { HeldBroadcasts };
