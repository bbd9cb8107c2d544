/**
 * Merging: f32 → f16 casts, weighted sums reading checkpoint dtypes (written in any), magnitude histograms, samples,
 * brackets and rank lookups over task vectors read from two checkpoints' ranges, bands (trimming by magnitude rank), and the
 * fused TIES trim + sign election + disjoint mean.
 */
import { CastDType, SignElection, vectorOf, type U16 } from '../kernels.js';
import { castBF16ToF32, castF16ToF32, castF32ToBF16 } from './copy.js';

/** IEEE half bits of the f32 bit pattern `f` (sign cleared): round to nearest even, see {@link castF32ToF16}. */
function f16FromMagnitudeBits(f: number): number {
  if (f >= 0x47800000) return f > 0x7f800000 ? 0x7e00 | ((f >>> 13) & 0x3ff) : 0x7c00;
  const e = (f >>> 23) - 127 + 15;
  const mant = f & 0x7fffff;
  if (e <= 0) {
    // Subnormal half (or zero): the mantissa with its implicit bit, shifted right by 14 − e, rounded to nearest even.
    if (e < -10) return 0;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    return rem > half || (rem === half && h & 1) ? h + 1 : h;
  }
  const h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return rem > 0x1000 || (rem === 0x1000 && h & 1) ? h + 1 : h; // a carry into the exponent rounds up correctly
}

/** f32 → IEEE half bits, round to nearest even; overflow to ±inf; NaN → quiet NaN keeping sign and top payload. */
export function castF32ToF16(src: Float32Array, dst: U16, n: number): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) dst[i] = ((u[i] >>> 16) & 0x8000) | f16FromMagnitudeBits(u[i] & 0x7fffffff);
}

/** The first n entries of `x` read as `dtype`, in f32 (`x` itself when it is f32). */
function asF32(name: string, dtype: CastDType, x: Float32Array | U16, n: number): Float32Array {
  if (dtype === CastDType.F32) return x as Float32Array;
  if (dtype !== CastDType.BF16 && dtype !== CastDType.F16) throw new Error(`${name}: dtype must be 0 (F32), 1 (BF16) or 2 (F16), got ${dtype}`);
  const v = new Float32Array(n);
  (dtype === CastDType.BF16 ? castBF16ToF32 : castF16ToF32)(x as U16, v, n);
  return v;
}

/** `out[i] = Σⱼ w[j]·inputs[j][i]`, each input read as its dtype, accumulated in f32 in input order, cast to `outDtype`. */
export function weightedSum(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], w: Float32Array, n: number, outDtype: CastDType, out: Float32Array | U16): void {
  if (inputs.length === 0) throw new Error('weightedSum: no inputs');
  const acc = new Float32Array(n);
  inputs.forEach((x, j) => {
    const v = asF32('weightedSum', dtypes[j], x, n), wj = Math.fround(w[j]);
    // Math.fround keeps every step in f32, as the native kernel computes.
    for (let i = 0; i < n; i++) acc[i] = j === 0 ? wj * v[i] : acc[i] + Math.fround(wj * v[i]);
  });
  store('weightedSum', acc, outDtype, out, n);
}

/** Writes the f32 values v[0, n) to `out` as `outDtype`. */
function store(name: string, v: Float32Array, outDtype: CastDType, out: Float32Array | U16, n: number): void {
  if (outDtype === CastDType.F32) (out as Float32Array).set(v.subarray(0, n));
  else if (outDtype === CastDType.BF16) castF32ToBF16(v, out as U16, n);
  else if (outDtype === CastDType.F16) castF32ToF16(v, out as U16, n);
  else throw new Error(`${name}: out dtype must be 0 (F32), 1 (BF16) or 2 (F16), got ${outDtype}`);
}

/** Magnitude bits (the f32 bit pattern with the sign cleared, which orders like |x|) of the first n entries of x. */
const magnitudes = (x: Float32Array, n: number) => new Uint32Array(x.buffer, x.byteOffset, n);

/** The vector the selection kernels read, in f32: inputs[0], or inputs[0] − inputs[1] subtracted in f32. */
function vector(name: string, dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number): Float32Array {
  if (inputs.length !== 1 && inputs.length !== 2) throw new Error(`${name}: a vector is one input (x) or two (x, base), got ${inputs.length}`);
  const x = asF32(name, dtypes[0], inputs[0], n);
  if (inputs.length === 1) return x;
  const base = asF32(name, dtypes[1], inputs[1], n), v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = x[i] - base[i];
  return v;
}

/**
 * Per bracket k on vector rows[k] (inputs[r + 1] − inputs[0] when `based`, else inputs[r]): counts magnitude bits
 * b < lo, = lo, in (lo, hi) and = hi > lo into counts[4k, 4k + 4), appending the third kind to lists[k] from
 * counts[4k + 2] while it fits.
 */
export function magnitudeBrackets(
  dtypes: Int32Array,
  inputs: readonly (Float32Array | U16)[],
  n: number,
  based: boolean,
  rows: Int32Array,
  bounds: Float64Array,
  lists: readonly Int32Array[],
  counts: Float64Array,
): void {
  const rowCount = inputs.length - (based ? 1 : 0);
  // Each row's magnitude bits, computed once however many brackets read the row.
  const rowBits: Uint32Array[] = [];
  const bitsOf = (r: number): Uint32Array => magnitudes(vector('magnitudeBrackets', ...vectorOf({ dtypes, inputs, based }, r), n), n);
  rows.forEach((r, k) => {
    const lo = bounds[2 * k], hi = bounds[2 * k + 1], list = lists[k];
    if (!(r >= 0 && r < rowCount)) throw new Error(`magnitudeBrackets: rows[${k}] = ${r} names no row of ${rowCount}`);
    if (!(lo >= 0 && lo <= hi && hi < 2 ** 31)) throw new Error(`magnitudeBrackets: bracket ${k}: need 0 ≤ lo ≤ hi < 2³¹`);
    const u = (rowBits[r] ??= bitsOf(r));
    const c = counts.subarray(4 * k, 4 * k + 4);
    for (let i = 0; i < n; i++) {
      const b = u[i] & 0x7fffffff;
      if (b < lo) c[0]++;
      else if (b === lo) c[1]++;
      else if (b < hi) {
        if (c[2] < list.length) list[c[2]] = b;
        c[2]++;
      } else if (b === hi) c[3]++;
    }
  });
}

/** out[j] = the magnitude bits of entry at[j] of the vector, for j < count. */
export function magnitudeGather(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number, at: Int32Array, count: number, out: Int32Array): void {
  const u = magnitudes(vector('magnitudeGather', dtypes, inputs, n), n);
  for (let j = 0; j < count; j++) {
    if (!(at[j] >= 0 && at[j] < n)) throw new Error(`magnitudeGather: at[${j}] = ${at[j]} lies outside [0, ${n})`);
    out[j] = u[at[j]] & 0x7fffffff;
  }
}

/**
 * For i < n whose magnitude bits b (the vector's bits, sign cleared) satisfy `b >>> matchShift === match`:
 * `hist[(b >>> shift) & (bins − 1)] += 1`.
 */
export function magnitudeHistogram(
  dtypes: Int32Array,
  inputs: readonly (Float32Array | U16)[],
  n: number,
  hist: Int32Array,
  bins: number,
  shift: number,
  matchShift: number,
  match: number,
): void {
  if (!(bins > 0 && bins <= 65536 && (bins & (bins - 1)) === 0)) throw new Error(`magnitudeHistogram: bins must be a power of two ≤ 65536, got ${bins}`);
  const u = magnitudes(vector('magnitudeHistogram', dtypes, inputs, n), n);
  const mask = bins - 1;
  // Shifts by 31 of a 31-bit magnitude are 0; `>>>` takes its count mod 32, so it is written out.
  for (let i = 0; i < n; i++) {
    const b = u[i] & 0x7fffffff;
    if ((matchShift >= 31 ? 0 : b >>> matchShift) === match) hist[(b >>> shift) & mask]++;
  }
}

/** The index of the `rank`-th (from 0) entry with magnitude bits `bits`, or −1 − their count when there are no more. */
export function magnitudeRankIndex(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number, bits: number, rank: number): number {
  const u = magnitudes(vector('magnitudeRankIndex', dtypes, inputs, n), n);
  let seen = 0;
  for (let i = 0; i < n; i++) if ((u[i] & 0x7fffffff) === bits && seen++ === rank) return i;
  return -1 - seen;
}

/**
 * Zeroes the entries outside a magnitude band, in place: with `at = offset + i`, kept when (b > low, or b = low and
 * at ≥ lowCut) and (b < high, or b = high and at < highCut).
 */
export function keepMagnitudeBand(x: Float32Array, n: number, offset: number, low: number, lowCut: number, high: number, highCut: number): void {
  const u = magnitudes(x, n);
  for (let i = 0; i < n; i++) {
    if (!inBand(u[i] & 0x7fffffff, offset + i, low, lowCut, high, highCut)) x[i] = 0;
  }
}

/**
 * Whether entry `at` of a vector, with magnitude bits b, lies in the band [low, lowCut, high, highCut] (as
 * {@link keepMagnitudeBand} keeps it).
 */
function inBand(b: number, at: number, low: number, lowCut: number, high: number, highCut: number): boolean {
  return (b > low || (b === low && at >= lowCut)) && (b < high || (b === high && at < highCut));
}

/**
 * TIES over k rows of `inputs` [base, row 1, …, row k], τⱼ = the row (or the row − base when `models`), each trimmed
 * to its band of `bands` (4 numbers per row, or empty: keep all), in f32: vⱼ = wⱼτⱼ, vote = Σ vⱼ (or Σ sign vⱼ), sign
 * + when vote ≥ 0; `out[i] = base[i] + lambda·acc / (normalize && agree ≠ 0 ? agree : 1)` with acc, agree the sums of
 * the vⱼ and wⱼ that have the elected sign (all of them without an election, and then |agree| ≥ 1e-8 to divide),
 * cast to `outDtype`.
 */
export function tiesCombine(
  dtypes: Int32Array,
  inputs: readonly (Float32Array | U16)[],
  n: number,
  w: Float32Array,
  bands: Float64Array,
  offset: number,
  outDtype: CastDType,
  out: Float32Array | U16,
  lambda: number,
  normalize: boolean,
  election: SignElection,
  models: boolean,
): void {
  const k = inputs.length - 1;
  if (k < 0) throw new Error('tiesCombine: no base');
  if (bands.length !== 0 && bands.length < 4 * k) throw new Error(`tiesCombine: bands holds ${bands.length} numbers, expected 4·k = ${4 * k} (or none)`);
  if (![SignElection.None, SignElection.Sum, SignElection.Count].includes(election)) throw new Error(`tiesCombine: election must be 0 (none), 1 (sum) or 2 (count), got ${election}`);
  const f = Math.fround, b = asF32('tiesCombine', dtypes[0], inputs[0], n), l = f(lambda);
  const rows = inputs.slice(1).map((x, j) => {
    const r = Float32Array.from(asF32('tiesCombine', dtypes[j + 1], x, n).subarray(0, n));
    if (models) for (let i = 0; i < n; i++) r[i] -= b[i];
    return r;
  });
  const bits = rows.map((r) => magnitudes(r, n));
  const sum = new Float32Array(n), v = new Float32Array(k);
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let j = 0; j < k; j++) {
      const b4 = 4 * j;
      const kept = bands.length === 0 || inBand(bits[j][i] & 0x7fffffff, offset + i, bands[b4], bands[b4 + 1], bands[b4 + 2], bands[b4 + 3]);
      v[j] = kept ? w[j] * rows[j][i] : 0;
      vote = f(vote + (election === SignElection.Count ? Math.sign(v[j]) : v[j]));
    }
    let acc = 0, agree = 0;
    for (let j = 0; j < k; j++) {
      if (election === SignElection.None || (vote >= 0 ? v[j] > 0 : v[j] < 0)) {
        acc = f(acc + v[j]);
        agree = f(agree + w[j]);
      }
    }
    const divide = election === SignElection.None ? Math.abs(agree) >= Math.fround(1e-8) : agree !== 0;
    sum[i] = b[i] + f(f(l * acc) / (normalize && divide ? agree : 1));
  }
  store('tiesCombine', sum, outDtype, out, n);
}
