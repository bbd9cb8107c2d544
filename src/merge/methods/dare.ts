/**
 * DARE (Yu et al., "Language Models are Super Mario", 2024): drop each task-vector entry with probability
 * p = 1 − density and rescale the survivors by 1/(1 − p), which keeps every entry's expectation; then merge
 * linearly (`dare_linear`) or with TIES's sign election (`dare_ties`). The draw is the engine's counter-based
 * dropout, so a seed fixes the mask on every backend and thread count.
 */
import { backend } from '../../engine/index.js';
import { combineTaskVectors, taskVectors } from './task-arithmetic.js';
import { perModel } from './ties.js';

/**
 * Drops, in place, each entry of `delta` with probability 1 − density (entry i is dropped when
 * hashUniform(seed, i) < 1 − density) and scales the rest by 1/density; returns `delta`.
 */
export function dareDrop(delta: Float32Array, density: number, seed: number): Float32Array {
  if (density >= 1) return delta;
  if (density <= 0) return delta.fill(0);
  backend().dropout(delta, delta, new Uint8Array(delta.length), delta.length, 1 - density, seed >>> 0);
  return delta;
}

/** Options of {@link dare}. */
export interface DareOptions {
  /** One weight per model (default 1 each). */
  weights?: readonly number[];
  /** Fraction of each task vector kept, one per model or one for all (required in spirit; default 1). */
  density?: number | readonly number[];
  /** Seed of model i's mask is `seed + i` (default 0). */
  seed?: number;
  /** `ties` elects signs as TIES does; `linear` sums (default). */
  variant?: 'linear' | 'ties';
  /** Scale of the merged task vector (default 1). */
  lambda?: number;
  /** Divide by the contributing weight (default false, as mergekit). */
  normalize?: boolean;
}

/** DARE merge of `models` onto `base`, as a fresh array; the inputs are not modified. */
export function dare(base: Float32Array, models: readonly Float32Array[], opts: DareOptions = {}): Float32Array {
  const seed = opts.seed ?? 0;
  const deltas = taskVectors(base, models).map((d, i) => dareDrop(d, perModel(opts.density, i, 1), seed + i));
  return combineTaskVectors(base, deltas, {
    weights: opts.weights,
    consensus: opts.variant === 'ties' ? 'sum' : null,
    normalize: opts.normalize ?? false,
    lambda: opts.lambda,
  });
}
