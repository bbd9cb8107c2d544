/** Rotary position embeddings (forward, and inverse rotation = backward). */

/**
 * Rotates each pair of x [batch, seq, heads, dim] by the angle whose cos/sin sit in column i of the tables
 * [cosBatch, seq, dim/2] (batch b at `b·cosBatchStride`): `(a, b) → (a·cos − b·sin, a·sin + b·cos)`, with sin
 * negated when `inverse`. Pairs are (2i, 2i+1) when `interleaved`, else (i, i + dim/2). `out` may be `x`.
 */
export function rope(
  x: Float32Array,
  out: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  batch: number,
  seq: number,
  heads: number,
  dim: number,
  cosBatchStride: number,
  interleaved: boolean,
  inverse: boolean,
): void {
  if (dim % 2 !== 0) throw new RangeError(`rope: dim must be even, got ${dim}`);
  const half = dim / 2;
  for (let b = 0; b < batch; b++)
    for (let s = 0; s < seq; s++) {
      const table = b * cosBatchStride + s * half;
      for (let h = 0; h < heads; h++) {
        const o = ((b * seq + s) * heads + h) * dim;
        for (let i = 0; i < half; i++) {
          const c = cos[table + i];
          const sn = inverse ? -sin[table + i] : sin[table + i];
          const i0 = o + (interleaved ? 2 * i : i);
          const i1 = o + (interleaved ? 2 * i + 1 : i + half);
          const x0 = x[i0];
          const x1 = x[i1];
          out[i0] = x0 * c - x1 * sn;
          out[i1] = x0 * sn + x1 * c;
        }
      }
    }
}
