/**
 * The diagonal (empirical) Fisher information that Fisher merging weights by: F = mean over examples of the
 * squared gradient of the example's negative log-likelihood, (∂ −log p(y|x; θ)/∂θ)², computed with the engine's
 * autograd. Pass one example per call of `loss` for the per-example Fisher of the paper; a batch per call gives
 * the cheaper squared-mean-gradient approximation.
 */
import { backward, tidy, type Tensor } from '../engine/index.js';
import { writeSafetensors, type SafeArray } from '../io/safetensors.js';

/**
 * Mean of the squared gradients of `loss(example)` over `examples`, for each named parameter (which must require
 * grad); their `.grad` is cleared before and after. Parameters that get no gradient have a zero Fisher.
 */
export function estimateDiagonalFisher<E>(params: readonly (readonly [string, Tensor])[], examples: Iterable<E>, loss: (example: E) => Tensor): Map<string, Float32Array> {
  const fisher = new Map(params.map(([name, p]) => [name, new Float32Array(p.size)]));
  const clear = () => {
    for (const [, p] of params) {
      p.grad?.dispose();
      p.grad = null;
    }
  };
  let count = 0;
  clear();
  for (const example of examples) {
    tidy(() => backward(loss(example)));
    for (const [name, p] of params) {
      if (!p.grad) continue;
      const g = p.grad.data as Float32Array, f = fisher.get(name)!;
      for (let i = 0; i < f.length; i++) f[i] += g[i] * g[i];
    }
    clear();
    count++;
  }
  if (count === 0) throw new Error('estimateDiagonalFisher: no examples');
  for (const f of fisher.values()) for (let i = 0; i < f.length; i++) f[i] /= count;
  return fisher;
}

/** Saves Fisher tensors (with their parameters' shapes) as an F32 safetensors file for `merge_method: fisher`. */
export function saveFisher(path: string, fisher: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): void {
  writeSafetensors(
    path,
    [...fisher].map(([name, f]) => {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`saveFisher: no shape for ${name}`);
      return [name, { dtype: 'F32', shape, data: f as SafeArray }] as const;
    }),
  );
}
