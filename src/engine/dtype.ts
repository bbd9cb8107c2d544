/**
 * Element types. `f32` and `bf16` are compute types (bf16 feeds GEMMs with fp32 accumulation); `f16` is a storage
 * type converted on load; `i32`/`i64` hold indices; `u8` holds masks.
 */
export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'i64' | 'u8';

/** The typed array that stores each dtype (bf16/f16 as raw 16-bit patterns). */
export interface StorageOf {
  f32: Float32Array;
  bf16: Uint16Array;
  f16: Uint16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
}
export type Storage = StorageOf[DType];

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1 };

/** Allocates a zero-filled storage array of `n` elements of `dtype`. */
export function allocStorage<D extends DType>(dtype: D, n: number): StorageOf[D] {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n) as StorageOf[D];
    case 'bf16':
    case 'f16':
      return new Uint16Array(n) as StorageOf[D];
    case 'i32':
      return new Int32Array(n) as StorageOf[D];
    case 'i64':
      return new BigInt64Array(n) as StorageOf[D];
    case 'u8':
      return new Uint8Array(n) as StorageOf[D];
  }
  throw new Error(`unknown dtype '${dtype as string}'`);
}
