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
import { CastDType, vectorOf, type VectorChunk } from '../engine/backend/kernels.js';

export type { VectorChunk };

/** How many vectors a chunk holds. */
const vectorCount = (c: VectorChunk): number => c.inputs.length - (c.based ? 1 : 0);

/**
 * One pass over several same-length vectors, chunk by chunk: `visit` gets each chunk of the vectors, its offset and
 * its length, in order, and may end the pass early by returning false. The pass starts at offset `from` (default 0),
 * which must be the offset of a chunk an earlier pass visited.
 */
export type VectorScan = (visit: (chunk: VectorChunk, offset: number, length: number) => void | boolean, from?: number) => void;

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
  /**
   * Where a pass looking for the entry of rank r among the equal ones (index order) may start: a chunk offset and r
   * counted from there (absent: from the start).
   */
  start?: (r: number) => [offset: number, rank: number];
}

const TOP_BINS = 1 << 15, TOP_SHIFT = 16, LOW_BINS = 1 << 16;
/**
 * Entries sampled per vector to bracket a rank, in runs of RUN consecutive entries, and the bracket's half-width in
 * samples: 6 standard deviations of the binomial count.
 */
const SAMPLE = 1 << 14, RUN = 16, MARGIN = 6 * Math.sqrt(SAMPLE) / 2 + 2;
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

/** The last tensor size's sample positions: a model's blocks repeat the same few sizes. */
let positions = { n: -1, at: new Float64Array(0) };

/**
 * Where a vector of n entries is sampled, ascending: SAMPLE entries (all of them when it has fewer) in runs of RUN
 * consecutive entries, one at a hashed place in each of SAMPLE / RUN equal blocks, so that the sample reads a few
 * pages of each input rather than every page of the tensor.
 */
function samplePositions(n: number): Float64Array {
  if (positions.n === n) return positions.at;
  const size = Math.min(n, SAMPLE), at = new Float64Array(size), stride = Math.floor(n / (SAMPLE / RUN));
  for (let i = 0; i < size; i++) {
    const r = Math.floor(i / RUN);
    at[i] = n <= SAMPLE ? i : r * stride + (mix(r) % (stride - RUN + 1)) + (i % RUN);
  }
  positions = { n, at };
  return at;
}

/** The magnitude bits of each vector at its sample positions, in one pass that gathers each range's share. */
function sampleMagnitudes(scan: VectorScan, n: number): Int32Array[] {
  const at = samplePositions(n), size = at.length;
  const samples: Int32Array[] = [];
  let from = 0;
  scan((chunk, offset, length) => {
    let to = from;
    while (to < size && at[to] < offset + length) to++;
    const local = new Int32Array(to - from);
    for (let k = from; k < to; k++) local[k - from] = at[k] - offset;
    for (let v = 0; v < vectorCount(chunk); v++) backend().magnitudeGather(...vectorOf(chunk, v), length, local, local.length, (samples[v] ??= new Int32Array(size)).subarray(from, to));
    from = to;
  });
  return samples;
}

/**
 * Locates ascending magnitude ranks in the vectors of a pass: `wanted[v]` lists ranks of vector v (null: none).
 * Each rank is first bracketed from a gathered sample and counted into the bracket in one pass: the entries strictly
 * inside it, a few percent of n, are collected and the rank is selected among them (quickselect); a rank inside a tie
 * at either end needs only the counts. A rank the bracket misses (a 6σ event) or whose bracket overflows its list is
 * found by the exact radix select over histograms instead (two passes).
 */
function locateRanks(scan: VectorScan, n: number, wanted: readonly (readonly (number | null)[])[]): (RankedMagnitude | null)[][] {
  const samples = sampleMagnitudes(scan, n);
  // Bracket k (in order over the vectors' wanted ranks) reads vector rows[k]; its counts are counts[4k, 4k + 4).
  const rows: number[] = [], counts = new Float64Array(4 * wanted.flat().filter((r) => r !== null).length);
  const brackets = wanted.map((w, v) =>
    w.map((rank) => {
      if (rank === null) return null;
      const k = rows.push(v) - 1;
      return bracket(samples[v], n, rank, counts.subarray(4 * k, 4 * k + 4), k);
    }),
  );
  const all = brackets.flat().filter((b) => b !== null);
  const vectorOfBracket = Int32Array.from(rows), bounds = Float64Array.from(all.flatMap((b) => [b.lo, b.hi])), lists = all.map((b) => b.list);
  const offsets: number[] = [];
  // Every bracket counts in one pass, each chunk's inputs read once for all of them.
  scan((chunk, offset, length) => {
    offsets.push(offset);
    backend().magnitudeBrackets(chunk.dtypes, chunk.inputs, length, chunk.based, vectorOfBracket, bounds, lists, counts);
    for (const b of all) b.after.push(b.counts[1], b.counts[2], b.counts[3]);
  });
  const resolved = brackets.map((bs) => bs.map((b) => b && resolveBracket(b, offsets, all.length)));
  const exact = locateByHistogram(scan, wanted.map((w, v) => w.map((rank, j) => (resolved[v][j] ? null : rank))));
  return resolved.map((rs, v) => rs.map((r, j) => r ?? exact[v][j]));
}

interface Bracket {
  rank: number;
  /** Magnitude bits bounding the bracket, both included. */
  lo: number;
  hi: number;
  /** The bits of the entries strictly inside, as magnitudeBrackets collects them. */
  list: Int32Array;
  /** Entries below lo, equal to lo, strictly inside, equal to hi (when hi > lo). */
  counts: Float64Array;
  /** counts[1], counts[2] and counts[3] after each chunk of the pass, in turn: where the entries of each kind lie. */
  after: number[];
}

/**
 * Int32 storage by slot, reused from one selection to the next: a streamed merge selects over every tensor in turn,
 * and fresh lists (zero-filled, a few percent of each tensor) made V8 collect garbage every few tensors. Held weakly,
 * so the collector may take them back once a merge is over. A slot's array holds whatever was left in it.
 */
const slots: (WeakRef<ArrayBuffer> | undefined)[] = [];

/** `length` entries of slot `slot`, valid until the slot is taken again. */
function scratch(slot: number, length: number): Int32Array {
  let buffer = slots[slot]?.deref();
  if (!buffer || buffer.byteLength < 4 * length) slots[slot] = new WeakRef((buffer = new ArrayBuffer(4 * length)));
  return new Int32Array(buffer, 0, length);
}

/**
 * The bracket around `rank` of n entries from a sample (which it reorders): MARGIN samples either side of where the
 * rank falls; its counts are `counts` and its list scratch slot `slot`.
 */
function bracket(sample: Int32Array, n: number, rank: number, counts: Float64Array, slot: number): Bracket {
  const m = sample.length, at = ((rank + 0.5) / n) * m;
  const from = Math.floor(at - MARGIN), to = Math.ceil(at + MARGIN);
  // Room for twice the entries the sample puts strictly inside.
  const expected = ((Math.min(m, to) - Math.max(0, from)) / m) * n;
  const list = scratch(slot, Math.min(n, Math.ceil(2 * expected) + 1024));
  const lo = from < 0 ? 0 : selectRank(sample, m, from), hi = to >= m ? 0x7fffffff : selectRank(sample, m, to);
  return { rank, lo, hi, list, counts, after: [] };
}

/**
 * The magnitude of a bracket's rank from its counts and list, or null when the bracket missed it or its list
 * overflowed; its `start` finds the chunk (of those at `offsets`) holding a given entry among the equal ones. The
 * selection reorders a copy of the list in scratch slot `slot`.
 */
function resolveBracket({ rank, lo, hi, list, counts, after }: Bracket, offsets: readonly number[], slot: number): RankedMagnitude | null {
  const [below, equal, inside, top] = counts;
  // The chunk where the running count of one kind (after[3c + kind]) passes r, and r counted from that chunk's start.
  const startBy = (runs: (c: number) => number) => (r: number): [number, number] => {
    let c = 0;
    while (c < offsets.length - 1 && runs(c) <= r) c++;
    return [offsets[c], r - (c === 0 ? 0 : runs(c - 1))];
  };
  if (rank < below) return null;
  if (rank < below + equal) return { bits: lo, less: below, equal, start: startBy((c) => after[3 * c]) };
  const above = below + equal + inside;
  if (rank >= above) return rank < above + top ? { bits: hi, less: above, equal: top, start: startBy((c) => after[3 * c + 2]) } : null;
  if (inside > list.length) return null;
  const copy = scratch(slot, inside);
  copy.set(list.subarray(0, inside));
  const bits = selectRank(copy, inside, rank - below - equal);
  // The list holds each chunk's entries after the previous chunk's: count those equal to bits chunk by chunk.
  const equalUpTo = new Float64Array(offsets.length);
  let less = 0, same = 0;
  for (let c = 0, i = 0; c < offsets.length; c++) {
    for (const end = after[3 * c + 1]; i < end; i++) {
      less += +(list[i] < bits);
      same += +(list[i] === bits);
    }
    equalUpTo[c] = same;
  }
  return { bits, less: below + equal + less, equal: same, start: startBy((c) => equalUpTo[c]) };
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
  scan((chunk, _offset, length) =>
    wanted.forEach((w, v) => w.some((r) => r !== null) && backend().magnitudeHistogram(...vectorOf(chunk, v), length, top[v], TOP_BINS, TOP_SHIFT, 31, 0)),
  );
  const found = wanted.map((w, v) => w.map((rank) => (rank === null ? null : { rank, ...bucketOf(top[v], rank), hist: new Int32Array(LOW_BINS) })));
  scan((chunk, _offset, length) =>
    found.forEach((fs, v) => {
      for (const f of fs) if (f) backend().magnitudeHistogram(...vectorOf(chunk, v), length, f.hist, LOW_BINS, 0, TOP_SHIFT, f.bucket);
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
 * For each vector v of a pass (all of length n) and its rank range [lo, hi) (clamped to [0, n]), the band that keeps
 * exactly the entries of ascending (|x|, index) rank in the range. A gathered sample and one pass locate the boundary
 * magnitudes (see locateRanks) and, where a boundary cuts through a tie, one more (up to the cut) finds the index of
 * the cut. No pass when every range is everything or nothing.
 */
export function magnitudeBands(scan: VectorScan, n: number, ranges: readonly (readonly [number, number])[]): MagnitudeBand[] {
  const clamped = ranges.map(([lo, hi]) => [Math.max(0, Math.floor(lo)), Math.min(n, Math.floor(hi))] as const);
  // The lowest and the highest kept rank of each range, where they are not the ends.
  const wanted = clamped.map(([lo, hi]) => (lo >= hi ? [] : [lo > 0 ? lo : null, hi < n ? hi - 1 : null]));
  if (wanted.every((w) => w.every((r) => r === null))) return clamped.map(([lo, hi]) => (lo >= hi ? NOTHING : EVERYTHING));
  const at = locateRanks(scan, n, wanted);
  // Ties to cut: vector v's entries equal to `bits`, the first `rank` of them (index order) on one side of the cut.
  const cuts: { v: number; at: RankedMagnitude; rank: number; set: (index: number) => void }[] = [];
  const bands = clamped.map(([lo, hi], v): MagnitudeBand => {
    if (lo >= hi) return NOTHING;
    const [l, h] = at[v];
    const band = { ...EVERYTHING };
    if (l) {
      band.low = l.bits;
      // The first lo − less entries equal to the low boundary are dropped: keep from the index of the next one.
      if (lo > l.less) cuts.push({ v, at: l, rank: lo - l.less, set: (i) => (band.lowCut = i) });
    }
    if (h) {
      band.high = h.bits;
      // The first hi − less entries equal to the high boundary are kept: up to the index of the next one, if any.
      band.highCut = n;
      if (hi - h.less < h.equal) cuts.push({ v, at: h, rank: hi - h.less, set: (i) => (band.highCut = i) });
    }
    return band;
  });
  // Each cut's pass starts at the chunk holding it (where the bracket pass counted it) and ends there.
  for (const { v, at: { bits, start }, rank, set } of cuts) {
    const [from, first] = start?.(rank) ?? [0, rank];
    let left = first;
    scan((chunk, offset, length) => {
      const i = backend().magnitudeRankIndex(...vectorOf(chunk, v), length, bits, left);
      if (i >= 0) set(offset + i);
      else left += i + 1;
      return i < 0;
    }, from);
  }
  return bands;
}

/** Whether `band` keeps every entry (applying it is a no-op). */
function keepsAll(band: MagnitudeBand): boolean {
  return band.low < 0 && band.high >= 2 ** 31;
}

/** Applies `band` to the chunk of a vector that starts at index `offset`. */
function applyBand(x: Float32Array, band: MagnitudeBand, offset: number): void {
  if (!keepsAll(band)) backend().keepMagnitudeBand(x, x.length, offset, band.low, band.lowCut, band.high, band.highCut);
}

/** Whole f32 arrays as vectors in one chunk. */
const wholeScan = (xs: readonly Float32Array[]): VectorScan => (visit, from = 0) => {
  if (from !== 0) throw new Error(`wholeScan: a pass starts at 0, not ${from}`);
  visit({ dtypes: new Int32Array(xs.length).fill(CastDType.F32), inputs: xs, based: false }, 0, xs[0]?.length ?? 0);
};

/**
 * The magnitude bits of the entry of ascending rank `rank` (0 ≤ rank < n), how many entries are smaller and how many
 * equal; `exact` skips the sampled bracket and runs the radix select the bracket falls back to.
 */
export function magnitudeAtRank(x: Float32Array, rank: number, { exact = false } = {}): RankedMagnitude {
  if (!(rank >= 0 && rank < x.length)) throw new RangeError(`magnitudeAtRank: rank ${rank} outside [0, ${x.length})`);
  const scan = wholeScan([x]);
  return (exact ? locateByHistogram(scan, [[rank]]) : locateRanks(scan, x.length, [[rank]]))[0][0]!;
}

/**
 * Zeroes, in place, every entry of `x` whose ascending magnitude rank is outside [lo, hi); returns `x`.
 * lo ≤ 0 and hi ≥ n keeps everything.
 */
export function keepMagnitudeRanks(x: Float32Array, lo: number, hi: number): Float32Array {
  const [band] = magnitudeBands(wholeScan([x]), x.length, [[lo, hi]]);
  applyBand(x, band, 0);
  return x;
}
