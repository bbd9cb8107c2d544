/** Global-norm gradient clipping (as `torch.nn.utils.clip_grad_norm_`). */
import { backend } from '../backend/index.js';
import type { Tensor } from '../tensor.js';

/**
 * Scales every gradient by `maxNorm / (norm + 1e-6)` when the global L2 norm over all of them exceeds `maxNorm`.
 * Returns the norm before clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const k = backend();
  let sq = 0;
  for (const p of params) if (p.grad) sq += k.sumSquares(p.grad.data, p.grad.size);
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const p of params) if (p.grad) k.affine(p.grad.data, p.grad.data, p.grad.size, coef, 0);
  return norm;
}
