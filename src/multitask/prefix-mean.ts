/**
 * A context-aware router input (MeteoRA's gate without the task id): a token's own features say little about the
 * task it belongs to — `=` ends every prompt — but the tokens before it do. The causal mean of a layer's inputs over
 * each sequence's real positions up to and including t,
 *   c_t = (S + Σ_{s ≤ t} m_s·x_s) / max(1, n + Σ_{s ≤ t} m_s),
 * carries that context at the cost of one [T, T] averaging product per sequence. m is the batch's key mask (1 without
 * one), so left padding changes nothing; S [B, in] and n [B] are the sums of the positions earlier decoding steps saw,
 * kept in the KV cache's layer state and advanced here, so a cached decode gives what a full forward would.
 */
import { add, matmul, mul, reshape, tensor, type Tensor } from '../engine/index.js';
import { currentSequenceContext } from '../nn/index.js';

type F32 = Tensor<'f32'>;

interface PrefixSums {
  /** Σ m_s·x_s per batch row, [B·in]. */
  sum: Float64Array;
  /** Σ m_s per batch row. */
  count: Float64Array;
}

/** Which of B·T rows (T positions per sequence) are their sequence's first real position: nothing precedes them. */
export function firstRealPositions(N: number, T: number): Uint8Array {
  const ctx = currentSequenceContext();
  const past = ctx?.past ?? 0;
  const mask = ctx?.keyMask ? (ctx.keyMask.toTyped() as Uint8Array) : null;
  const S = past + T;
  const out = new Uint8Array(N);
  for (let b = 0; b < N / T; b++) {
    let n = 0;
    for (let s = 0; s < S; s++) {
      const real = mask ? mask[b * S + s]! : 1;
      if (real && n === 0 && s >= past) out[b * T + s - past] = 1;
      n += real;
    }
  }
  return out;
}

/**
 * The causal prefix means [B·T, in] of rows x2 [B·T, in] (T positions per sequence, batch-major), differentiable in
 * x2. `owner` keys this layer's sums in the cache across decoding steps (one owner per layer and adapter).
 */
export function causalPrefixMean(x2: Tensor, T: number, owner: object): F32 {
  const [N, inF] = x2.shape as [number, number];
  const B = N / T;
  if (!Number.isInteger(B)) throw new Error(`causalPrefixMean: ${N} rows are not a whole number of sequences of ${T} positions`);
  const ctx = currentSequenceContext();
  const past = ctx?.past ?? 0;
  const mask = ctx?.keyMask ? (ctx.keyMask.toTyped() as Uint8Array) : null;
  const real = (b: number, s: number) => (mask ? mask[b * (past + T) + past + s]! : 1);
  const before = past > 0 ? (ctx?.state?.get(owner) as PrefixSums | undefined) : undefined;
  if (past > 0 && !before)
    throw new Error(`causalPrefixMean: a decoding step after ${past} cached positions, but the cache holds no prefix sums for this layer (the earlier positions went through a forward without it)`);
  // L[b, t, s] = m_s / denominator(b, t) for s ≤ t: row t of L·x is the mean of the new positions so far.
  const L = new Float32Array(B * T * T);
  const inv = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let n = before ? before.count[b]! : 0;
    for (let t = 0; t < T; t++) {
      n += real(b, t);
      inv[b * T + t] = 1 / Math.max(1, n);
      for (let s = 0; s <= t; s++) L[(b * T + t) * T + s] = real(b, s) * inv[b * T + t]!;
    }
  }
  let y = matmul(tensor(L, [B, T, T]), reshape(x2, [B, T, inF]));
  if (before) y = add(y, mul(tensor(inv, [B, T, 1]), tensor(Float32Array.from(before.sum), [B, 1, inF])));
  if (ctx?.state) {
    const xs = x2.toTyped() as Float32Array;
    const next: PrefixSums = { sum: before ? Float64Array.from(before.sum) : new Float64Array(B * inF), count: before ? Float64Array.from(before.count) : new Float64Array(B) };
    for (let b = 0; b < B; b++)
      for (let s = 0; s < T; s++) {
        if (!real(b, s)) continue;
        next.count[b]! += 1;
        for (let i = 0; i < inF; i++) next.sum[b * inF + i]! += xs[(b * T + s) * inF + i]!;
      }
    ctx.state.set(owner, next);
  }
  return reshape(y, [N, inF]);
}
