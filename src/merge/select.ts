/**
 * Magnitude ranking without sorting: the entries of a tensor ordered by (|x|, index) ascending, and masks that keep
 * a band of those ranks. TIES keeps the top `density` fraction, Breadcrumbs a middle band. Selection is a two-level
 * radix select over the IEEE bits of |x| (for non-negative floats the bit patterns order like the values): one
 * histogram pass over the top 15 magnitude bits, one over the low 16 bits of the chosen buckets — two linear passes
 * (the backend's magnitudeHistogram) instead of an O(n log n) sort. The passes see the tensor chunk by chunk, so a
 * streamed merge can select over a tensor it never holds whole; the mask is then the backend's keepMagnitudeBand,
 * which breaks ties in magnitude by index (the earlier entry ranks lower), so every mask is deterministic.
 */
import { backend } from '../engine/index.js';

/** One pass over several same-length vectors, chunk by chunk: calls `visit` with each chunk of every vector, in order. */
export type VectorScan = (visit: (chunks: readonly Float32Array[]) => void) => void;

/** A band of ranks as the backend's keepMagnitudeBand takes it. */
export interface MagnitudeBand {
  /** Magnitude bits of the lowest kept rank (−1: no lower boundary) and how many entries equal to it are dropped. */
  low: number;
  lowSkip: number;
  /** Magnitude bits of the highest kept rank (2³¹: no upper boundary) and how many entries equal to it are kept. */
  high: number;
  highTake: number;
}

/** Magnitude bits of one rank and how many entries are strictly smaller in magnitude. */
export interface RankedMagnitude {
  bits: number;
  less: number;
}

const TOP_SHIFT = 16, TOP_BINS = 1 << 15, LOW_BINS = 1 << 16;
const EVERYTHING: MagnitudeBand = { low: -1, lowSkip: 0, high: 2 ** 31, highTake: 0 };
// No magnitude reaches 2³¹, so nothing lies above `low` and nothing is taken at `high`.
const NOTHING: MagnitudeBand = { low: 2 ** 31, lowSkip: 0, high: 2 ** 31, highTake: 0 };

/** The bucket holding ascending rank `rank` of `hist`, and how many entries lie in lower buckets. */
function bucketOf(hist: Int32Array, rank: number): { bucket: number; less: number } {
  let less = 0, bucket = 0;
  while (less + hist[bucket] <= rank) less += hist[bucket++];
  return { bucket, less };
}

/**
 * Locates ascending magnitude ranks in the vectors of a scan: `wanted[v]` lists ranks of vector v (null: none).
 * Two passes of `scan`, or none when nothing is wanted.
 */
function locateRanks(scan: VectorScan, wanted: readonly (readonly (number | null)[])[]): (RankedMagnitude | null)[][] {
  const k = backend();
  if (wanted.every((w) => w.every((r) => r === null))) return wanted.map((w) => w.map(() => null));
  const top = wanted.map((w) => (w.some((r) => r !== null) ? new Int32Array(TOP_BINS) : null));
  scan((chunks) => chunks.forEach((c, v) => top[v] && k.magnitudeHistogram(c, c.length, top[v], TOP_BINS, TOP_SHIFT, 31, 0)));
  const found = wanted.map((w, v) => w.map((rank) => (rank === null ? null : { rank, ...bucketOf(top[v]!, rank), hist: new Int32Array(LOW_BINS) })));
  scan((chunks) =>
    chunks.forEach((c, v) => {
      for (const f of found[v]) if (f) k.magnitudeHistogram(c, c.length, f.hist, LOW_BINS, 0, TOP_SHIFT, f.bucket);
    }),
  );
  return found.map((fs) =>
    fs.map((f) => {
      if (f === null) return null;
      const sub = bucketOf(f.hist, f.rank - f.less);
      return { bits: (f.bucket << TOP_SHIFT) | sub.bucket, less: f.less + sub.less };
    }),
  );
}

/**
 * For each vector v of a scan (all of length n) and its rank range [lo, hi) (clamped to [0, n]), the band that keeps
 * exactly the entries of ascending (|x|, index) rank in the range. Two passes of `scan`, none when every range is
 * everything or nothing.
 */
export function magnitudeBands(scan: VectorScan, n: number, ranges: readonly (readonly [number, number])[]): MagnitudeBand[] {
  const clamped = ranges.map(([lo, hi]) => [Math.max(0, Math.floor(lo)), Math.min(n, Math.floor(hi))] as const);
  // The lowest and the highest kept rank of each range, where they are not the ends.
  const at = locateRanks(scan, clamped.map(([lo, hi]) => (lo >= hi ? [] : [lo > 0 ? lo : null, hi < n ? hi - 1 : null])));
  return clamped.map(([lo, hi], v) => {
    if (lo >= hi) return NOTHING;
    const [l, h] = at[v];
    if (!l && !h) return EVERYTHING;
    return { low: l ? l.bits : -1, lowSkip: l ? lo - l.less : 0, high: h ? h.bits : 2 ** 31, highTake: h ? hi - h.less : 0 };
  });
}

/** Whether `band` keeps every entry (applying it is a no-op). */
export function keepsAll(band: MagnitudeBand): boolean {
  return band.low < 0 && band.high >= 2 ** 31;
}

/** Applies `band` to the next chunk of a vector; `seen` [2] carries the boundary counts from chunk to chunk. */
export function applyBand(x: Float32Array, band: MagnitudeBand, seen: Int32Array): void {
  if (!keepsAll(band)) backend().keepMagnitudeBand(x, x.length, band.low, band.lowSkip, band.high, band.highTake, seen);
}

/** A scan over whole arrays: one chunk each. */
export const wholeScan = (xs: readonly Float32Array[]): VectorScan => (visit) => visit(xs);

/** The magnitude bits of the entry of ascending rank `rank` (0 ≤ rank < n) and how many entries are smaller. */
export function magnitudeAtRank(x: Float32Array, rank: number): RankedMagnitude {
  if (!(rank >= 0 && rank < x.length)) throw new RangeError(`magnitudeAtRank: rank ${rank} outside [0, ${x.length})`);
  return locateRanks(wholeScan([x]), [[rank]])[0][0]!;
}

/**
 * Zeroes, in place, every entry of `x` whose ascending magnitude rank is outside [lo, hi); returns `x`.
 * lo ≤ 0 and hi ≥ n keeps everything.
 */
export function keepMagnitudeRanks(x: Float32Array, lo: number, hi: number): Float32Array {
  const [band] = magnitudeBands(wholeScan([x]), x.length, [[lo, hi]]);
  applyBand(x, band, new Int32Array(2));
  return x;
}
