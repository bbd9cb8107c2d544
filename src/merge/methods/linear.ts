/** Linear merging (Wortsman et al., "Model soups", 2022): the weighted average of the models' tensors. */
import { backend } from '../../engine/index.js';

/** Options of {@link linear}. */
export interface LinearOptions {
  /** Divide by Σ weights (mergekit's default, true); false gives the plain weighted sum. */
  normalize?: boolean;
}

/**
 * Σ wᵢ·xᵢ (÷ Σ wᵢ when normalising) over same-length tensors, as a fresh array; the inputs are not modified.
 * A weight sum of (nearly) zero is not divided by.
 */
export function linear(tensors: readonly Float32Array[], weights: readonly number[], opts: LinearOptions = {}): Float32Array {
  return linearInto(new Float32Array(checkSameLength('linear', tensors)), tensors, weights, opts);
}

/** {@link linear} written into `out` (which may be one of `tensors`); returns `out`. */
export function linearInto(out: Float32Array, tensors: readonly Float32Array[], weights: readonly number[], opts: LinearOptions = {}): Float32Array {
  const n = checkSameLength('linear', tensors);
  if (weights.length !== tensors.length) throw new Error(`linear: ${tensors.length} tensors but ${weights.length} weights`);
  const scale = linearScale(weights, opts);
  // Scale the first term into a temporary when `out` aliases a later input, then accumulate with the backend's axpy.
  const aliased = tensors.indexOf(out) > 0;
  const acc = aliased ? new Float32Array(n) : out;
  backend().affine(tensors[0], acc, n, weights[0] * scale, 0);
  for (let j = 1; j < tensors.length; j++) backend().axpy(tensors[j], acc, n, weights[j] * scale);
  if (aliased) out.set(acc);
  return out;
}

/** The factor every weight is multiplied by: 1 / Σ wᵢ when normalising (and the sum is not nearly zero), else 1. */
export function linearScale(weights: readonly number[], opts: LinearOptions = {}): number {
  const total = weights.reduce((a, w) => a + w, 0);
  return (opts.normalize ?? true) && Math.abs(total) > 1e-8 ? 1 / total : 1;
}

/** Throws unless there is at least one tensor and all have the same length; returns that length. */
export function checkSameLength(op: string, tensors: readonly Float32Array[]): number {
  if (tensors.length === 0) throw new Error(`${op}: no tensors to merge`);
  const n = tensors[0].length;
  tensors.forEach((t, i) => {
    if (t.length !== n) throw new Error(`${op}: tensor ${i} has ${t.length} elements, tensor 0 has ${n}`);
  });
  return n;
}
