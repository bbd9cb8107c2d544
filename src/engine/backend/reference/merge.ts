/**
 * Merging: f32 → f16 casts, weighted sums and task vectors reading checkpoint dtypes (sums written in any), magnitude
 * histograms, rank lookups and bands (trimming by magnitude rank), and the fused TIES sign election + disjoint mean.
 */
import { CastDType, type U16 } from '../kernels.js';
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
  if (outDtype === CastDType.F32) (out as Float32Array).set(acc);
  else if (outDtype === CastDType.BF16) castF32ToBF16(acc, out as U16, n);
  else if (outDtype === CastDType.F16) castF32ToF16(acc, out as U16, n);
  else throw new Error(`weightedSum: out dtype must be 0 (F32), 1 (BF16) or 2 (F16), got ${outDtype}`);
}

/** Magnitude bits (the f32 bit pattern with the sign cleared, which orders like |x|) of the first n entries of x. */
const magnitudes = (x: Float32Array, n: number) => new Uint32Array(x.buffer, x.byteOffset, n);

/** `out[i] = x[i] − base[i]`, each read as its dtype. */
export function taskVector(xDtype: CastDType, x: Float32Array | U16, baseDtype: CastDType, base: Float32Array | U16, out: Float32Array, n: number): void {
  const xv = asF32('taskVector', xDtype, x, n), bv = asF32('taskVector', baseDtype, base, n);
  for (let i = 0; i < n; i++) out[i] = xv[i] - bv[i];
}

/** Counts magnitude bits b < lo, = lo, in (lo, hi) and = hi > lo into `counts`, appending the third kind to `list` from counts[2] while it fits. */
export function magnitudeBracket(x: Float32Array, n: number, lo: number, hi: number, list: Int32Array, counts: Float64Array): void {
  if (!(lo <= hi && hi < 2 ** 31)) throw new Error(`magnitudeBracket: need lo ≤ hi < 2³¹, got ${lo}, ${hi}`);
  const u = magnitudes(x, n);
  for (let i = 0; i < n; i++) {
    const b = u[i] & 0x7fffffff;
    if (b < lo) counts[0]++;
    else if (b === lo) counts[1]++;
    else if (b < hi) {
      if (counts[2] < list.length) list[counts[2]] = b;
      counts[2]++;
    } else if (b === hi) counts[3]++;
  }
}

/**
 * For i < n whose magnitude bits b (x's bits, sign cleared) satisfy `b >>> matchShift === match`:
 * `hist[(b >>> shift) & (bins − 1)] += 1`.
 */
export function magnitudeHistogram(x: Float32Array, n: number, hist: Int32Array, bins: number, shift: number, matchShift: number, match: number): void {
  if (!(bins > 0 && bins <= 65536 && (bins & (bins - 1)) === 0)) throw new Error(`magnitudeHistogram: bins must be a power of two ≤ 65536, got ${bins}`);
  const u = magnitudes(x, n);
  const mask = bins - 1;
  // Shifts by 31 of a 31-bit magnitude are 0; `>>>` takes its count mod 32, so it is written out.
  for (let i = 0; i < n; i++) {
    const b = u[i] & 0x7fffffff;
    if ((matchShift >= 31 ? 0 : b >>> matchShift) === match) hist[(b >>> shift) & mask]++;
  }
}

/** The index of the `rank`-th (from 0) entry with magnitude bits `bits`, or −1 − their count when there are no more. */
export function magnitudeRankIndex(x: Float32Array, n: number, bits: number, rank: number): number {
  const u = magnitudes(x, n);
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
 * TIES over k task vectors, row j at `deltas[j·stride, j·stride + n)`, each trimmed to its band of `bands` (4 numbers
 * per row, or empty: keep all), in f32: vⱼ = wⱼδⱼ, vote = Σ vⱼ (or Σ sign vⱼ when `byCount`), sign + when vote ≥ 0;
 * `out[i] = base[i] + lambda·acc / (normalize && agree ≠ 0 ? agree : 1)` with acc, agree the sums of the vⱼ and wⱼ
 * that have the elected sign.
 */
export function tiesCombine(
  deltas: Float32Array,
  k: number,
  n: number,
  stride: number,
  w: Float32Array,
  bands: Float64Array,
  offset: number,
  baseDtype: CastDType,
  base: Float32Array | U16,
  out: Float32Array,
  lambda: number,
  normalize: boolean,
  byCount: boolean,
): void {
  if (bands.length !== 0 && bands.length < 4 * k) throw new Error(`tiesCombine: bands holds ${bands.length} numbers, expected 4·k = ${4 * k} (or none)`);
  const f = Math.fround, bits = magnitudes(deltas, deltas.length), b = asF32('tiesCombine', baseDtype, base, n), l = f(lambda);
  const v = new Float32Array(k);
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let j = 0; j < k; j++) {
      const at = j * stride + i, b4 = 4 * j;
      const kept = bands.length === 0 || inBand(bits[at] & 0x7fffffff, offset + i, bands[b4], bands[b4 + 1], bands[b4 + 2], bands[b4 + 3]);
      v[j] = kept ? w[j] * deltas[at] : 0;
      vote = f(vote + (byCount ? Math.sign(v[j]) : v[j]));
    }
    let acc = 0, agree = 0;
    for (let j = 0; j < k; j++) {
      if (vote >= 0 ? v[j] > 0 : v[j] < 0) {
        acc = f(acc + v[j]);
        agree = f(agree + w[j]);
      }
    }
    out[i] = b[i] + f(f(l * acc) / (normalize && agree !== 0 ? agree : 1));
  }
}
