/**
 * What a causal LM's forward shares with layers that look along the sequence (MeteoRA's context-aware gate)
 * without changing every module's forward signature: the batch's key mask, how many positions the KV cache already
 * holds, and the cache's store for state such layers carry from one decoding step to the next. The models set it
 * around their layer stack; outside one (a bare layer call) there is none: no mask, no cache.
 */
import type { Tensor } from '../engine/index.js';
import { ContextVariable } from './context-variable.js';

export interface SequenceContext {
  /** u8 [B, past + T]: 1 for real positions, 0 for padding (null: all real). */
  keyMask: Tensor | null;
  /** Positions the cache held before this forward (0 without a cache). */
  past: number;
  /** State layers keep with the KV cache across decoding steps, keyed by the layer (null: no cache). */
  state: Map<object, unknown> | null;
}

const current = new ContextVariable<SequenceContext | null>(null);

/** Runs `fn` (a model's layer stack) with `ctx` as the sequence context. */
export function withSequenceContext<T>(ctx: SequenceContext, fn: () => T): T {
  return current.with(ctx, fn);
}

/** The sequence context of the forward in progress (null outside a model's forward). */
export function currentSequenceContext(): SequenceContext | null {
  return current.get();
}
