/**
 * Parameterised hypercomplex multiplication (Zhang et al. 2021; Compacter, Karimi Mahabadi et al. 2021, eq. 3–5):
 * a weight W [in, out] = Σᵢ Aᵢ ⊗ Bᵢ with n "rules" Aᵢ [n, n] and Bᵢ [in/n, out/n] — n²·… fewer parameters than W.
 * Factorised (Compacter): Bᵢ = W_leftᵢ [in/n, r] · W_rightᵢ [r, out/n].
 */
import { matmul, mul, reshape, sum, type Tensor } from '../../engine/index.js';

/** W = Σᵢ Aᵢ ⊗ Bᵢ for rules `a` [n, n, n] and blocks `b` [n, p, q] → [n·p, n·q]; differentiable. */
export function kroneckerSum(a: Tensor, b: Tensor): Tensor<'f32'> {
  const [n, n1, n2] = a.shape as [number, number, number];
  const [nb, p, q] = b.shape as [number, number, number];
  if (nb !== n || n1 !== n || n2 !== n) throw new Error(`kroneckerSum: rules ${a.describe()} and blocks ${b.describe()} must be [n, n, n] and [n, p, q]`);
  // (A ⊗ B)[i·p + k, j·q + l] = A[i, j]·B[k, l]: broadcast A [n, n, 1, n, 1] against B [n, 1, p, 1, q].
  const prod = mul(reshape(a, [n, n, 1, n, 1]), reshape(b, [n, 1, p, 1, q]));
  return reshape(sum(prod, 0), [n * p, n * q]) as Tensor<'f32'>;
}

/** The PHM weight of one projection: blocks from `W_left`·`W_right` when factorised, else `W` itself. */
export function phmWeight(rule: Tensor, left: Tensor, right: Tensor | null): Tensor<'f32'> {
  return kroneckerSum(rule, right ? matmul(left, right) : left);
}
