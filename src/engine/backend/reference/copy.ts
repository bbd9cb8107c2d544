/** Data movement: strided copies, dtype casts, fill, affine and axpy. */
import type { AnyArray, U16 } from '../kernels.js';
import { forEachRow } from './strided.js';

type BitArray = Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

// An unsigned-integer view of the same bytes, so copies move bits (NaN payloads included) whatever the dtype.
function bits(a: AnyArray): BitArray {
  switch (a.BYTES_PER_ELEMENT) {
    case 1:
      return new Uint8Array(a.buffer, a.byteOffset, a.length);
    case 2:
      return new Uint16Array(a.buffer, a.byteOffset, a.length);
    case 4:
      return new Uint32Array(a.buffer, a.byteOffset, a.length);
    default:
      return new BigUint64Array(a.buffer, a.byteOffset, a.length);
  }
}

/** `dst[dstStrides·idx] = src[srcStrides·idx]` for every index of `shape` (rank ≤ 8), bit-exact for any dtype. */
export function copyStrided(src: AnyArray, srcStrides: number[], dst: AnyArray, dstStrides: number[], shape: number[]): void {
  if (src.BYTES_PER_ELEMENT !== dst.BYTES_PER_ELEMENT)
    throw new TypeError(`copyStrided: src has ${src.BYTES_PER_ELEMENT}-byte elements, dst ${dst.BYTES_PER_ELEMENT}-byte`);
  const s = bits(src);
  const d = bits(dst);
  forEachRow('copyStrided', shape, [srcStrides, dstStrides], ([so, doff], cols, [ss, ds]) => {
    for (let i = 0; i < cols; i++) d[doff + i * ds] = s[so + i * ss];
  });
}

// One shared scratch word for single-value bit casts.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** bf16 bits of a 32-bit float pattern: round to nearest even; NaN stays NaN (quiet bit set, sign kept). */
function bf16FromBits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** f32 value → bf16 bits (round to nearest even). */
export function f32ToBF16(x: number): number {
  scratchF32[0] = x;
  return bf16FromBits(scratchU32[0]);
}

/** bf16 bits → f32 value (exact). */
export function bf16ToF32(b: number): number {
  scratchU32[0] = b << 16;
  return scratchF32[0];
}

/** f32 → bf16 bits, round to nearest even; NaN stays NaN. */
export function castF32ToBF16(src: Float32Array, dst: U16, n: number): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) dst[i] = bf16FromBits(u[i]);
}

/** bf16 bits → f32 (exact: the bits become the high half of the f32 pattern). */
export function castBF16ToF32(src: U16, dst: Float32Array, n: number): void {
  const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = src[i] << 16;
}

/** IEEE half bits → f32 bits (exact; subnormals are renormalised, inf and NaN payloads carried over). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: value = mant·2^-24; shift the leading one into the implicit-bit position.
  let e = -14;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** IEEE half bits → f32 (exact, including subnormals, inf and NaN). */
export function castF16ToF32(src: U16, dst: Float32Array, n: number): void {
  const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = f16BitsToF32Bits(src[i]);
}

/** `dst[i] = value` for i < n. */
export function fill(dst: Float32Array, n: number, value: number): void {
  dst.fill(value, 0, n);
}

/** `out[i] = alpha·x[i] + beta` for i < n (`out` may be `x`). */
export function affine(x: Float32Array, out: Float32Array, n: number, alpha: number, beta: number): void {
  for (let i = 0; i < n; i++) out[i] = alpha * x[i] + beta;
}

/** `y[i] += alpha·x[i]` for i < n. */
export function axpy(x: Float32Array, y: Float32Array, n: number, alpha: number): void {
  for (let i = 0; i < n; i++) y[i] += alpha * x[i];
}
