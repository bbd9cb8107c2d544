/**
 * Running a module with some of its own parameters replaced — how BitFit (adapter biases) and LayerNorm tuning
 * (adapter norm weights) reuse the base layer's forward for any module type without re-implementing it.
 */
import type { Tensor } from '../../engine/index.js';
import type { Module } from '../../nn/index.js';

/** Runs `fn` with `m`'s parameters `params` (name → tensor) in place of its own, restoring them afterwards. */
export function withParams<T>(m: Module, params: readonly [string, Tensor][], fn: () => T): T {
  const saved = params.map(([k]) => [k, m.param(k)] as const);
  try {
    for (const [k, t] of params) m.setParam(k, t);
    return fn();
  } finally {
    for (const [k, t] of saved) m.setParam(k, t);
  }
}

/** Copies `src`'s values into `dst` (same shape; f32 → f32 or bf16 → bf16). */
export function copyValues(dst: Tensor, src: Tensor): void {
  if (dst.dtype !== src.dtype || dst.size !== src.size || !dst.isContiguous() || !src.isContiguous())
    throw new Error(`copyValues: cannot copy ${src.describe()} into ${dst.describe()}`);
  (dst.data as Float32Array | Uint16Array).set((src.data as Float32Array | Uint16Array).subarray(0, src.size) as never);
}
