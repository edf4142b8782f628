"use strict";
// Latency histograms and summaries over repetitions.
//
// Clients see up to a few hundred thousand deliveries per scenario; instead of
// shipping every sample to the driver, each process keeps a log-bucketed
// histogram (~2 % resolution, like HdrHistogram) that merges by adding counts.

const SUB = 32; // buckets per power of two: 2^(1/32) ≈ 2.2 % relative error
const NBUCKETS = SUB * 40 + 2; // up to 2^40 µs, far beyond any bounded run

class Histogram {
  constructor() {
    this.counts = new Float64Array(NBUCKETS);
    this.n = 0;
    this.min = Infinity;
    this.max = 0;
  }
  /** Records one value in microseconds. */
  record(us) {
    if (!(us > 0)) us = 0; // NaN or negative (never expected with a monotonic clock)
    const i = us < 1 ? 0 : Math.min(NBUCKETS - 1, Math.floor(Math.log2(us) * SUB) + 1);
    this.counts[i]++;
    this.n++;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }
  /** Value (µs) at quantile q in [0,1]; bucket midpoint clamped to the seen range. */
  quantile(q) {
    if (!this.n) return null;
    const target = Math.max(1, Math.ceil(q * this.n));
    let acc = 0;
    for (let i = 0; i < NBUCKETS; i++) {
      acc += this.counts[i];
      if (acc >= target) {
        const mid = i === 0 ? 0.5 : Math.pow(2, (i - 1 + 0.5) / SUB);
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }
  merge(other) {
    for (let i = 0; i < NBUCKETS; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }
  /** Sparse form for the control channel. */
  toJSON() {
    const b = [];
    for (let i = 0; i < NBUCKETS; i++) if (this.counts[i]) b.push(i, this.counts[i]);
    return { n: this.n, min: this.n ? this.min : 0, max: this.max, b };
  }
  static fromJSON(j) {
    const h = new Histogram();
    for (let k = 0; k < j.b.length; k += 2) h.counts[j.b[k]] = j.b[k + 1];
    h.n = j.n;
    h.min = j.n ? j.min : Infinity;
    h.max = j.max;
    return h;
  }
}

/** The finite numbers in `values`, ascending. */
function finiteSorted(values) {
  return values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
}

/** Median of a non-empty ascending array. */
function middle(v) {
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** median, min and max of the finite numbers in `values` (null if none). */
function summarize(values) {
  const v = finiteSorted(values);
  if (!v.length) return null;
  return { median: middle(v), min: v[0], max: v[v.length - 1], n: v.length };
}

/** Median of the finite numbers in `values` (NaN if none). */
function median(values) {
  const v = finiteSorted(values);
  return v.length ? middle(v) : NaN;
}

/** Compact number formatting for the table: 3 significant digits, thousands as k. */
function fmt(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (Number.isInteger(x) && a < 1e4) return String(x);
  if (a >= 1e6) return (x / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return (x / 1e3).toPrecision(3) + "k";
  if (a >= 100) return x.toFixed(0);
  if (a >= 1) return x.toPrecision(3);
  return x.toPrecision(2);
}

/** Fixed-point formatting (bench/sticky.js, bench/redis.js): whole from 1000 up, 3 decimals below 1. */
function fmtFixed(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a >= 1000) return String(Math.round(x));
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

module.exports = { Histogram, summarize, median, fmt, fmtFixed };
