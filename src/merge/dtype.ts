/** Conversions between checkpoint dtypes and the f32 every merge computes in. */
import { backend } from '../engine/index.js';
import type { CastDType, U16 } from '../engine/backend/kernels.js';
import type { SafeArray, SafeDType } from '../io/safetensors.js';

/**
 * A range of values in the dtype the merge kernels read or write it in: an input's range as its checkpoint stores it
 * (F64 inputs arrive as F32), or the output's range in the dtype it is written in (F64 outputs get an F32 one).
 */
export interface TypedRange {
  data: Float32Array | U16;
  dtype: CastDType;
}

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
    case 'BF16':
    case 'F16': {
      const out = new Uint16Array(x.length);
      if (dtype === 'BF16') backend().castF32ToBF16(x, out, x.length);
      else backend().castF32ToF16(x, out, x.length);
      return out;
    }
  }
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
