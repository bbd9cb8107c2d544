/**
 * Magnitude ranking without sorting: the entries of a tensor ordered by (|x|, index) ascending, and masks that keep
 * a range of those ranks. TIES keeps the top `density` fraction, Breadcrumbs a middle band. Selection is a
 * three-level radix select over the IEEE bits of |x| (for non-negative floats the bit patterns order like the
 * values), so a 45M-entry matrix costs four linear passes instead of an O(n log n) sort. Ties in magnitude are
 * broken by index (the earlier entry ranks lower), which makes every mask deterministic.
 */

const ABS = 0x7fffffff;
/** Radix levels below the first (which is bits 20–30): [shift, width]. */
const LOWER_LEVELS: [number, number][] = [
  [10, 10],
  [0, 10],
];

/**
 * The magnitude bits of the entry of ascending rank `rank` (0 ≤ rank < n) and how many entries are strictly
 * smaller in magnitude. One histogram pass over the top 11 magnitude bits, one pass collecting the entries of the
 * chosen bucket, then the lower 20 bits are resolved on those candidates only.
 */
export function magnitudeAtRank(x: Float32Array, rank: number): { bits: number; less: number } {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const n = bits.length;
  if (!(rank >= 0 && rank < n)) throw new RangeError(`magnitudeAtRank: rank ${rank} outside [0, ${n})`);
  const top = new Float64Array(2048);
  for (let i = 0; i < n; i++) top[(bits[i] & ABS) >>> 20]++;
  let remaining = rank, less = 0, bucket = 0;
  while (remaining >= top[bucket]) {
    remaining -= top[bucket];
    less += top[bucket++];
  }
  let candidates = new Uint32Array(top[bucket]);
  for (let i = 0, c = 0; i < n; i++) {
    const b = bits[i] & ABS;
    if (b >>> 20 === bucket) candidates[c++] = b;
  }
  let prefix = bucket << 20;
  for (const [shift, width] of LOWER_LEVELS) {
    const mask = (1 << width) - 1;
    const hist = new Float64Array(1 << width);
    for (const b of candidates) hist[(b >>> shift) & mask]++;
    let sub = 0;
    while (remaining >= hist[sub]) {
      remaining -= hist[sub];
      less += hist[sub++];
    }
    prefix |= sub << shift;
    candidates = candidates.filter((b) => ((b >>> shift) & mask) === sub);
  }
  return { bits: prefix >>> 0, less };
}

/**
 * Zeroes, in place, every entry of `x` whose ascending magnitude rank is outside [lo, hi); returns `x`.
 * lo ≤ 0 and hi ≥ n keeps everything.
 */
export function keepMagnitudeRanks(x: Float32Array, lo: number, hi: number): Float32Array {
  const n = x.length;
  lo = Math.max(0, Math.floor(lo));
  hi = Math.min(n, Math.floor(hi));
  if (lo === 0 && hi === n) return x;
  if (lo >= hi) return x.fill(0);
  const bits = new Uint32Array(x.buffer, x.byteOffset, n);
  // Entries equal in magnitude to the boundary value are ranked by index: skip the first `skip` of those at the
  // low boundary, take only the first `take` of those at the high boundary.
  const low = lo > 0 ? magnitudeAtRank(x, lo) : { bits: -1, less: 0 };
  const high = hi < n ? magnitudeAtRank(x, hi - 1) : { bits: 0x80000000, less: 0 };
  const skip = lo - low.less, take = hi - high.less;
  let seenLow = 0, seenHigh = 0;
  for (let i = 0; i < n; i++) {
    const b = bits[i] & ABS;
    let keep = b > low.bits && b < high.bits;
    if (b === low.bits || b === high.bits) {
      keep = (b !== low.bits || seenLow >= skip) && (b !== high.bits || seenHigh < take);
      if (b === low.bits) seenLow++;
      if (b === high.bits) seenHigh++;
    }
    if (!keep) x[i] = 0;
  }
  return x;
}
