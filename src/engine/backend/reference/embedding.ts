/** Embedding lookup and its scatter-add backward. */
import type { U16 } from '../kernels.js';
import { bf16ToF32 } from './copy.js';

/** `out[i, :] = table[ids[i], :]` for i < n (table f32, or bf16 bits when `bf16`); throws on an id outside [0, vocab). */
export function embedding(table: Float32Array | U16, bf16: boolean, ids: Int32Array, out: Float32Array, n: number, dim: number, vocab: number): void {
  if (bf16 !== table instanceof Uint16Array)
    throw new TypeError(`embedding: table must be a ${bf16 ? 'Uint16Array (bf16 bits)' : 'Float32Array'}`);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id < 0 || id >= vocab) throw new RangeError(`embedding: ids[${i}] = ${id} is outside [0, ${vocab})`);
    for (let j = 0; j < dim; j++) {
      const x = table[id * dim + j];
      out[i * dim + j] = bf16 ? bf16ToF32(x) : x;
    }
  }
}

/** Scatter-add backward: `gTable[ids[i], :] += gy[i, :]`; throws on an id outside gTable's rows. */
export function embeddingBackward(ids: Int32Array, gy: Float32Array, gTable: Float32Array, n: number, dim: number): void {
  const vocab = dim > 0 ? Math.floor(gTable.length / dim) : 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id < 0 || id >= vocab) throw new RangeError(`embeddingBackward: ids[${i}] = ${id} is outside [0, ${vocab})`);
    for (let j = 0; j < dim; j++) gTable[id * dim + j] += gy[i * dim + j];
  }
}
