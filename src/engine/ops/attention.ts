/** Fused causal self-attention with grouped-query heads (one kernel forward, one backward). */
import { backend } from '../backend/index.js';
import { needsGrad, record } from '../autograd.js';
import { empty, type Tensor } from '../tensor.js';
import { requireDType, requireRank } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

export interface AttentionOptions {
  /** Mask future keys (query t sees keys up to its own position). Default true. */
  causal?: boolean;
  /** Score scale; default 1/√D. */
  scale?: number;
  /** [B, S] u8, 0 for keys to ignore (padding). */
  keyMask?: Tensor | null;
  /** Keys/values used from a larger cache: only the first `length` of `k`'s S positions count. */
  length?: number;
}

/**
 * Scaled dot-product attention softmax(q·kᵀ·scale)·v with q [B, T, H, D] and k, v [B, S, KVH, D]
 * (H a multiple of KVH; query head h reads kv head ⌊h·KVH/H⌋). Returns [B, T, H, D]. With T < S the queries are the
 * last T positions (decoding with a KV cache). No [T, S] matrix per head is materialised.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): F32 {
  for (const [t, n] of [
    [q, 'q'],
    [k, 'k'],
    [v, 'v'],
  ] as const) {
    requireDType('attention', t, 'f32');
    requireRank('attention', t, 4, n);
  }
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const [kb, sCap, KVH, kd] = k.shape as [number, number, number, number];
  const S = opts.length ?? sCap;
  if (kb !== B || kd !== D || v.shape.join() !== k.shape.join() || H % KVH !== 0 || S > sCap || S < T)
    throw new Error(`attention: incompatible shapes q ${q.describe()}, k ${k.describe()}, v ${v.describe()} (length ${S})`);
  const mask = opts.keyMask ?? null;
  if (mask && (mask.dtype !== 'u8' || mask.shape.join() !== [B, S].join()))
    throw new Error(`attention: keyMask must be u8 [${B}, ${S}], got ${mask.describe()}`);
  const causal = opts.causal ?? true;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const qc = contiguous(q) as F32;
  const kc = contiguous(k) as F32;
  const vc = contiguous(v) as F32;
  const out = empty([B, T, H, D]);
  const lse = empty([B, H, T]);
  const m = mask ? (contiguous(mask).data as Uint8Array) : null;
  backend().attention(qc.data, kc.data, vc.data, out.data, lse.data, m, B, T, S, sCap, H, KVH, D, scale, causal);
  record(out, 'attention', [q, k, v], (gy) => {
    if (sCap !== S && (needsGrad(k) || needsGrad(v)))
      throw new Error('attention: gradients through a partially used KV cache are not supported');
    const g = contiguous(gy) as F32;
    const gq = empty(q.shape);
    const gk = empty([B, S, KVH, D]);
    const gv = empty([B, S, KVH, D]);
    backend().attentionBackward(qc.data, kc.data, vc.data, out.data, lse.data, m, g.data, gq.data, gk.data, gv.data, B, T, S, sCap, H, KVH, D, scale, causal);
    if (g !== gy) g.dispose();
    return [gq, gk, gv];
  });
  return out;
}
