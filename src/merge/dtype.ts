/** Conversions between checkpoint dtypes and the f32 every merge computes in. */
import { backend } from '../engine/index.js';
import type { SafeArray, SafeDType } from '../io/safetensors.js';

/** The floating dtypes a merge reads and writes; other dtypes (integer buffers) are copied from the base. */
export type FloatDType = 'F32' | 'F16' | 'BF16' | 'F64';

/** Whether tensors of `dtype` are merged (floating point) rather than copied. */
export function isFloatDType(dtype: SafeDType): dtype is FloatDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

/** `data` of `dtype` as f32: the same array for F32, a fresh one otherwise. */
export function toF32(data: SafeArray, dtype: FloatDType): Float32Array {
  switch (dtype) {
    case 'F32':
      return data as Float32Array;
    case 'F64':
      return Float32Array.from(data as Float64Array);
    case 'BF16':
    case 'F16': {
      const out = new Float32Array(data.length);
      if (dtype === 'BF16') backend().castBF16ToF32(data as Uint16Array, out, out.length);
      else backend().castF16ToF32(data as Uint16Array, out, out.length);
      return out;
    }
  }
}

/** f32 `x` converted to `dtype` (rounding to nearest even): `x` itself for F32, a fresh array otherwise. */
export function fromF32(x: Float32Array, dtype: FloatDType): SafeArray {
  switch (dtype) {
    case 'F32':
      return x as SafeArray;
    case 'F64':
      return Float64Array.from(x);
    case 'BF16': {
      const out = new Uint16Array(x.length);
      backend().castF32ToBF16(x, out, x.length);
      return out as SafeArray;
    }
    case 'F16':
      return f32ToF16(x) as SafeArray;
  }
}

/**
 * IEEE half bits of `x`, round to nearest even, overflow to ±inf, NaN kept, subnormals exact. (The kernel
 * contract has castF16ToF32 but no f32 → f16 cast; this is its TypeScript stand-in.)
 */
export function f32ToF16(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half (or zero): shift the mantissa with its implicit bit, rounding to nearest even.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const m = mant | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
      if (rem > half || (rem === half && h & 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent rounds up correctly (to inf at most)
    out[i] = sign | h;
  }
  return out;
}

/** The safetensors dtype named by a mergekit/PyTorch `dtype` string (float32, float16, bfloat16, …). */
export function parseDType(name: string): FloatDType | undefined {
  const table: Record<string, FloatDType> = {
    float32: 'F32', fp32: 'F32', f32: 'F32', float: 'F32',
    float16: 'F16', fp16: 'F16', f16: 'F16', half: 'F16',
    bfloat16: 'BF16', bf16: 'BF16',
    float64: 'F64', f64: 'F64',
  };
  return table[name.toLowerCase()];
}
