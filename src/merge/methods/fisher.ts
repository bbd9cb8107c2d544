/**
 * Fisher merging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", 2022): each parameter is the
 * average of the models' values weighted by their diagonal Fisher information, θ* = Σ λᵢFᵢθᵢ / Σ λᵢFᵢ, where
 * Fᵢ = E[(∂ log p(y|x; θᵢ)/∂θ)²] is estimated as the mean squared per-example gradient over a dataset (see
 * ../fisher.ts). Parameters no model has information about fall back to the λ-weighted average.
 */
import { checkSameLength } from './linear.js';

/** Options of {@link fisherMerge}. */
export interface FisherOptions {
  /** Model weights λᵢ (default 1 each). */
  weights?: readonly number[];
  /** Floor added to every Fisher entry (default 1e-6, the paper's code) so all-zero entries average uniformly. */
  epsilon?: number;
}

/** Fisher-weighted average of `models` with diagonal Fishers `fishers` (same lengths), as a fresh array. */
export function fisherMerge(models: readonly Float32Array[], fishers: readonly Float32Array[], opts: FisherOptions = {}): Float32Array {
  const n = checkSameLength('fisherMerge', [...models, ...fishers]);
  if (fishers.length !== models.length) throw new Error(`fisherMerge: ${models.length} models but ${fishers.length} Fisher tensors`);
  const w = opts.weights ?? models.map(() => 1);
  if (w.length !== models.length) throw new Error(`fisherMerge: ${models.length} models but ${w.length} weights`);
  const eps = opts.epsilon ?? 1e-6;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let num = 0, den = 0;
    for (let j = 0; j < models.length; j++) {
      const f = w[j] * (fishers[j][i] + eps);
      num += f * models[j][i];
      den += f;
    }
    out[i] = num / den;
  }
  return out;
}
