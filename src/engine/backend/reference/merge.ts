/**
 * Merging: f32 → f16 casts, weighted sums reading checkpoint dtypes, magnitude histograms and bands (trimming by
 * magnitude rank), and the fused TIES sign election + disjoint mean.
 */
import { CastDType, type U16 } from '../kernels.js';
import { castBF16ToF32, castF16ToF32 } from './copy.js';

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

/** `y[i] = beta·y[i] + alpha·x[i]` for i < n, `x` read as `dtype`; beta = 0 overwrites y without reading it. */
export function scaleAdd(dtype: CastDType, x: Float32Array | U16, y: Float32Array, n: number, alpha: number, beta: number): void {
  let v: Float32Array;
  if (dtype === CastDType.F32) v = x as Float32Array;
  else if (dtype === CastDType.BF16 || dtype === CastDType.F16) {
    v = new Float32Array(n);
    (dtype === CastDType.BF16 ? castBF16ToF32 : castF16ToF32)(x as U16, v, n);
  } else throw new Error(`scaleAdd: dtype must be 0 (F32), 1 (BF16) or 2 (F16), got ${dtype}`);
  // Math.fround keeps every step in f32, as the native kernel computes.
  const a = Math.fround(alpha), b = Math.fround(beta);
  for (let i = 0; i < n; i++) y[i] = b === 0 ? a * v[i] : Math.fround(b * y[i]) + Math.fround(a * v[i]);
}

/**
 * For i < n whose magnitude bits b (x's bits, sign cleared) satisfy `b >>> matchShift === match`:
 * `hist[(b >>> shift) & (bins − 1)] += 1`.
 */
export function magnitudeHistogram(x: Float32Array, n: number, hist: Int32Array, bins: number, shift: number, matchShift: number, match: number): void {
  if (!(bins > 0 && bins <= 65536 && (bins & (bins - 1)) === 0)) throw new Error(`magnitudeHistogram: bins must be a power of two ≤ 65536, got ${bins}`);
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  const mask = bins - 1;
  // Shifts by 31 of a 31-bit magnitude are 0; `>>>` takes its count mod 32, so it is written out.
  for (let i = 0; i < n; i++) {
    const b = u[i] & 0x7fffffff;
    if ((matchShift >= 31 ? 0 : b >>> matchShift) === match) hist[(b >>> shift) & mask]++;
  }
}

/**
 * Zeroes the entries outside a magnitude band, in place: kept when low < b < high; b = low is kept once `seen[0]`
 * (such entries before it, plus the value passed) ≥ lowSkip, b = high while `seen[1]` < highTake; `seen` is
 * advanced by this call's boundary entries.
 */
export function keepMagnitudeBand(x: Float32Array, n: number, low: number, lowSkip: number, high: number, highTake: number, seen: Int32Array): void {
  const u = new Uint32Array(x.buffer, x.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const b = u[i] & 0x7fffffff;
    let keep = b > low && b < high;
    if (b === low || b === high) {
      keep = (b !== low || seen[0] >= lowSkip) && (b !== high || seen[1] < highTake);
      if (b === low) seen[0]++;
      if (b === high) seen[1]++;
    }
    if (!keep) x[i] = 0;
  }
}

/**
 * TIES over k task vectors `deltas` [k, n]: per entry, vote = Σ wⱼδⱼ (or Σ sign(wⱼδⱼ) when `byCount`), sign + when
 * vote ≥ 0; `out[i] = base[i] + lambda·acc / (normalize && agree ≠ 0 ? agree : 1)` with acc, agree the sums of the
 * wⱼδⱼ and wⱼ that have the elected sign (in double).
 */
export function tiesCombine(
  deltas: Float32Array,
  k: number,
  n: number,
  w: Float32Array,
  base: Float32Array,
  out: Float32Array,
  lambda: number,
  normalize: boolean,
  byCount: boolean,
): void {
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let j = 0; j < k; j++) {
      const v = w[j] * deltas[j * n + i];
      vote += byCount ? Math.sign(v) : v;
    }
    let acc = 0, agree = 0;
    for (let j = 0; j < k; j++) {
      const v = w[j] * deltas[j * n + i];
      if (vote >= 0 ? v > 0 : v < 0) {
        acc += v;
        agree += w[j];
      }
    }
    out[i] = base[i] + (lambda * acc) / (normalize && agree !== 0 ? agree : 1);
  }
}
