/**
 * Magnitude ranking without sorting the tensor: the entries ordered by (|x|, index) ascending, and masks that keep a
 * band of those ranks. TIES keeps the top `density` fraction, Breadcrumbs a middle band. Selection works on the IEEE
 * bits of |x| (for non-negative floats the bit patterns order like the values) in linear passes: a sample brackets
 * the wanted rank, one counting pass collects the few percent of entries inside the bracket, and a quickselect over
 * those finds it (as in Floyd and Rivest's SELECT); when the bracket misses, an exact two-level radix select over
 * histograms of the top 15 and the low 16 magnitude bits does (Int32 counting passes, slower). Entries equal in
 * magnitude rank by index (the earlier one lower), so where a band's boundary falls inside such a tie, the rank lookup
 * (magnitudeRankIndex) turns it into an index cut; the mask is then a per-entry predicate (keepMagnitudeBand, or
 * tiesCombine as it reads) that any chunk applies on its own. The passes see the tensor chunk by chunk, so a streamed
 * merge selects over a tensor it never holds whole.
 */
import { backend } from '../engine/index.js';

/**
 * One pass over several same-length vectors, chunk by chunk: `visit` gets each chunk of every vector and its offset, in
 * order, and may end the pass early by returning false.
 */
export type VectorScan = (visit: (chunks: readonly Float32Array[], offset: number) => void | boolean) => void;

/** Vectors a selection reads: in passes, and a few entries at a time (the sample that brackets a rank). */
export interface VectorSource {
  scan: VectorScan;
  /** Each vector's entries at `indices` (ascending), in fresh arrays (the caller may overwrite them). */
  gather(indices: Float64Array): Float32Array[];
}

/** A band of ranks as the backend's keepMagnitudeBand takes it. */
export interface MagnitudeBand {
  /** Magnitude bits of the lowest kept rank (−1: no lower boundary); entries equal to it are kept from index `lowCut` on. */
  low: number;
  lowCut: number;
  /** Magnitude bits of the highest kept rank (2³¹: no upper boundary); entries equal to it are kept below index `highCut`. */
  high: number;
  highCut: number;
}

/** Magnitude bits of one rank, how many entries are strictly smaller in magnitude, and how many equal it. */
export interface RankedMagnitude {
  bits: number;
  less: number;
  equal: number;
}

const TOP_BINS = 1 << 15, TOP_SHIFT = 16, LOW_BINS = 1 << 16;
/** Entries sampled per vector to bracket a rank, and the bracket's half-width in samples: 6 standard deviations of the binomial count. */
const SAMPLE = 1 << 16, MARGIN = 6 * Math.sqrt(SAMPLE) / 2 + 2;
const EVERYTHING: MagnitudeBand = { low: -1, lowCut: 0, high: 2 ** 31, highCut: 0 };
// No magnitude reaches 2³¹, so nothing lies above `low` and nothing equals `high`.
const NOTHING: MagnitudeBand = { low: 2 ** 31, lowCut: 0, high: 2 ** 31, highCut: 0 };

/** The bucket holding ascending rank `rank` of `hist`, and how many entries lie in lower buckets. */
function bucketOf(hist: Int32Array, rank: number): { bucket: number; less: number } {
  let less = 0, bucket = 0;
  while (less + hist[bucket] <= rank) less += hist[bucket++];
  return { bucket, less };
}

/** murmur3's fmix32: where in its block a sample is taken. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The sorted magnitude bits of one entry per block of ⌈n / SAMPLE⌉ entries (at a hashed place in it) of each vector. */
function sampleMagnitudes(source: VectorSource, n: number): Uint32Array[] {
  const step = Math.max(1, Math.ceil(n / SAMPLE)), blocks = Math.ceil(n / step);
  const at = Float64Array.from({ length: blocks }, (_, k) => k * step + (mix(k) % Math.min(step, n - k * step)));
  return source.gather(at).map((v) => {
    const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
    for (let i = 0; i < bits.length; i++) bits[i] &= 0x7fffffff;
    return bits.sort();
  });
}

/**
 * Locates ascending magnitude ranks in the vectors of a source: `wanted[v]` lists ranks of vector v (null: none).
 * Each rank is first bracketed from a gathered sample and counted into the bracket in one pass: the entries strictly
 * inside it, a few percent of n, are collected and the rank is selected among them (quickselect); a rank inside a tie
 * at either end needs only the counts. A rank the bracket misses (a 6σ event) or whose bracket overflows its list is
 * found by the exact radix select over histograms instead (two passes).
 */
function locateRanks(source: VectorSource, n: number, wanted: readonly (readonly (number | null)[])[]): (RankedMagnitude | null)[][] {
  const samples = sampleMagnitudes(source, n);
  const brackets = wanted.map((w, v) => w.map((rank) => (rank === null ? null : bracket(samples[v], n, rank))));
  source.scan((chunks) => brackets.forEach((bs, v) => bs.forEach((b) => b && backend().magnitudeBracket(chunks[v], chunks[v].length, b.lo, b.hi, b.list, b.counts))));
  const resolved = brackets.map((bs) => bs.map((b) => b && resolveBracket(b)));
  const exact = locateByHistogram(source.scan, wanted.map((w, v) => w.map((rank, j) => (resolved[v][j] ? null : rank))));
  return resolved.map((rs, v) => rs.map((r, j) => r ?? exact[v][j]));
}

interface Bracket {
  rank: number;
  /** Magnitude bits bounding the bracket, both included. */
  lo: number;
  hi: number;
  /** The bits of the entries strictly inside, as magnitudeBracket collects them. */
  list: Int32Array;
  /** Entries below lo, equal to lo, strictly inside, equal to hi (when hi > lo). */
  counts: Float64Array;
}

/** The bracket around `rank` of n entries from a sorted sample: MARGIN samples either side of where the rank falls. */
function bracket(sample: Uint32Array, n: number, rank: number): Bracket {
  const m = sample.length, at = ((rank + 0.5) / n) * m;
  const from = Math.floor(at - MARGIN), to = Math.ceil(at + MARGIN);
  // Room for twice the entries the sample puts strictly inside.
  const expected = ((Math.min(m, to) - Math.max(0, from)) / m) * n;
  const list = new Int32Array(Math.min(n, Math.ceil(2 * expected) + 1024));
  return { rank, lo: from < 0 ? 0 : sample[from], hi: to >= m ? 0x7fffffff : sample[to], list, counts: new Float64Array(4) };
}

/** The magnitude of a bracket's rank from its counts and list, or null when the bracket missed it or its list overflowed. */
function resolveBracket({ rank, lo, hi, list, counts }: Bracket): RankedMagnitude | null {
  const [below, equal, inside, top] = counts;
  if (rank < below) return null;
  if (rank < below + equal) return { bits: lo, less: below, equal };
  const above = below + equal + inside;
  if (rank >= above) return rank < above + top ? { bits: hi, less: above, equal: top } : null;
  if (inside > list.length) return null;
  const bits = selectRank(list, inside, rank - below - equal);
  let less = 0, same = 0;
  for (let i = 0; i < inside; i++) {
    less += +(list[i] < bits);
    same += +(list[i] === bits);
  }
  return { bits, less: below + equal + less, equal: same };
}

/** The value of ascending rank r among the first m entries of `a`, which it reorders: Hoare's FIND (expected O(m)). */
function selectRank(a: Int32Array, m: number, r: number): number {
  let lo = 0, hi = m - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo, j = hi;
    // Entries equal to the pivot stop both scans and are swapped, so runs of ties split evenly.
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (r <= j) hi = j;
    else if (r >= i) lo = i;
    else return pivot;
  }
  return a[r];
}

/** The exact radix select: ranks of `wanted` located over a top-bits histogram, then a low-bits one of their buckets (two passes). */
function locateByHistogram(scan: VectorScan, wanted: readonly (readonly (number | null)[])[]): (RankedMagnitude | null)[][] {
  if (wanted.every((w) => w.every((r) => r === null))) return wanted.map((w) => w.map(() => null));
  const top = wanted.map(() => new Int32Array(TOP_BINS));
  scan((chunks) => chunks.forEach((c, v) => wanted[v].some((r) => r !== null) && backend().magnitudeHistogram(c, c.length, top[v], TOP_BINS, TOP_SHIFT, 31, 0)));
  const found = wanted.map((w, v) => w.map((rank) => (rank === null ? null : { rank, ...bucketOf(top[v], rank), hist: new Int32Array(LOW_BINS) })));
  scan((chunks) =>
    chunks.forEach((c, v) => {
      for (const f of found[v]) if (f) backend().magnitudeHistogram(c, c.length, f.hist, LOW_BINS, 0, TOP_SHIFT, f.bucket);
    }),
  );
  return found.map((fs) =>
    fs.map((f) => {
      if (f === null) return null;
      const sub = bucketOf(f.hist, f.rank - f.less);
      return { bits: (f.bucket << TOP_SHIFT) | sub.bucket, less: f.less + sub.less, equal: f.hist[sub.bucket] };
    }),
  );
}

/**
 * For each vector v of a source (all of length n) and its rank range [lo, hi) (clamped to [0, n]), the band that keeps
 * exactly the entries of ascending (|x|, index) rank in the range. A gathered sample and one pass locate the boundary
 * magnitudes (see locateRanks) and, where a boundary cuts through a tie, one more (up to the cut) finds the index of
 * the cut. No pass when every range is everything or nothing.
 */
export function magnitudeBands(source: VectorSource, n: number, ranges: readonly (readonly [number, number])[]): MagnitudeBand[] {
  const clamped = ranges.map(([lo, hi]) => [Math.max(0, Math.floor(lo)), Math.min(n, Math.floor(hi))] as const);
  // The lowest and the highest kept rank of each range, where they are not the ends.
  const wanted = clamped.map(([lo, hi]) => (lo >= hi ? [] : [lo > 0 ? lo : null, hi < n ? hi - 1 : null]));
  if (wanted.every((w) => w.every((r) => r === null))) return clamped.map(([lo, hi]) => (lo >= hi ? NOTHING : EVERYTHING));
  const at = locateRanks(source, n, wanted);
  // Tie positions to turn into indices: [vector, bits, rank among the equal entries, band field to set].
  const cuts: { v: number; bits: number; rank: number; set: (index: number) => void }[] = [];
  const bands = clamped.map(([lo, hi], v): MagnitudeBand => {
    if (lo >= hi) return NOTHING;
    const [l, h] = at[v];
    const band = { ...EVERYTHING };
    if (l) {
      band.low = l.bits;
      // The first lo − less entries equal to the low boundary are dropped: keep from the index of the next one.
      if (lo > l.less) cuts.push({ v, bits: l.bits, rank: lo - l.less, set: (i) => (band.lowCut = i) });
    }
    if (h) {
      band.high = h.bits;
      // The first hi − less entries equal to the high boundary are kept: up to the index of the next one, if any.
      band.highCut = n;
      if (hi - h.less < h.equal) cuts.push({ v, bits: h.bits, rank: hi - h.less, set: (i) => (band.highCut = i) });
    }
    return band;
  });
  if (cuts.length > 0) {
    const left = cuts.map((c) => c.rank);
    // Ends at the chunk holding the last cut.
    source.scan((chunks, offset) => {
      cuts.forEach((c, m) => {
        if (left[m] < 0) return;
        const i = backend().magnitudeRankIndex(chunks[c.v], chunks[c.v].length, c.bits, left[m]);
        if (i >= 0) {
          c.set(offset + i);
          left[m] = -1;
        } else left[m] += i + 1;
      });
      return left.some((l) => l >= 0);
    });
  }
  return bands;
}

/** Whether `band` keeps every entry (applying it is a no-op). */
export function keepsAll(band: MagnitudeBand): boolean {
  return band.low < 0 && band.high >= 2 ** 31;
}

/** Applies `band` to the chunk of a vector that starts at index `offset`. */
export function applyBand(x: Float32Array, band: MagnitudeBand, offset: number): void {
  if (!keepsAll(band)) backend().keepMagnitudeBand(x, x.length, offset, band.low, band.lowCut, band.high, band.highCut);
}

/** Whole arrays as a source: one chunk each. */
export const wholeSource = (xs: readonly Float32Array[]): VectorSource => ({
  scan: (visit) => void visit(xs, 0),
  gather: (indices) =>
    xs.map((x) => {
      const out = new Float32Array(indices.length);
      for (let k = 0; k < indices.length; k++) out[k] = x[indices[k]];
      return out;
    }),
});

/**
 * The magnitude bits of the entry of ascending rank `rank` (0 ≤ rank < n), how many entries are smaller and how many
 * equal; `exact` skips the sampled bracket and runs the radix select the bracket falls back to.
 */
export function magnitudeAtRank(x: Float32Array, rank: number, { exact = false } = {}): RankedMagnitude {
  if (!(rank >= 0 && rank < x.length)) throw new RangeError(`magnitudeAtRank: rank ${rank} outside [0, ${x.length})`);
  const source = wholeSource([x]);
  return (exact ? locateByHistogram(source.scan, [[rank]]) : locateRanks(source, x.length, [[rank]]))[0][0]!;
}

/**
 * Zeroes, in place, every entry of `x` whose ascending magnitude rank is outside [lo, hi); returns `x`.
 * lo ≤ 0 and hi ≥ n keeps everything.
 */
export function keepMagnitudeRanks(x: Float32Array, lo: number, hi: number): Float32Array {
  const [band] = magnitudeBands(wholeSource([x]), x.length, [[lo, hi]]);
  applyBand(x, band, 0);
  return x;
}
