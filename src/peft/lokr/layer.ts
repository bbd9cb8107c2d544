/**
 * LoKr (Kronecker-product adapter; PEFT `LOKR`): ΔW = (α/r)·W1 ⊗ W2. Each dimension is factored as
 * out = l·k and in = m·n ({@link factorization}); W1 [l, m] and W2 [k, n], so ΔW [l·k, m·n] = [out, in]. A factor is
 * stored whole (`lokr_w1`, `lokr_w2`) or as a rank-r product (`lokr_w1_a`·`lokr_w1_b`, `lokr_w2_a`·`lokr_w2_b`):
 * W2 whenever r < max(k, n)/2, W1 only with `decompose_both` and r < max(l, m)/2 (PEFT's rule).
 * Init (PEFT): W1 (or W1a) zero, the rest Kaiming-uniform (ΔW = 0); "lycoris": W2 (or W2b) zero instead;
 * false: all random.
 */
import { matmul, mul, reshape, zeros, type Tensor } from '../../engine/index.js';
import { kaimingUniform, type F32 } from '../common/linear-adapter.js';
import { LycorisLinear, type LycorisSpec } from '../common/lycoris.js';

/**
 * Splits `dimension` into (m, n), m·n = dimension: with `factor` > 0 dividing it, (factor, dimension/factor);
 * otherwise (m ≤ n) the divisor pair closest to square whose smaller part does not exceed `factor` (−1: no limit).
 */
export function factorization(dimension: number, factor = -1): [number, number] {
  if (factor > 0 && dimension % factor === 0) return [factor, dimension / factor]; // as PEFT: not reordered
  const limit = factor === -1 ? dimension : factor;
  let [m, n] = [1, dimension];
  while (m < n) {
    let next = m + 1;
    while (dimension % next !== 0) next++;
    const nextN = dimension / next;
    if (next + nextN > m + n || next > limit) break;
    [m, n] = [next, nextN];
  }
  return m > n ? [n, m] : [m, n];
}

/** The Kronecker product of a [a1, a2] and b [b1, b2]: [a1·b1, a2·b2], by broadcasting a[i,·,j,·]·b[·,k,·,l]. */
export function kron(a: Tensor, b: Tensor): F32 {
  const [a1, a2] = a.shape as [number, number];
  const [b1, b2] = b.shape as [number, number];
  return reshape(mul(reshape(a, [a1, 1, a2, 1]), reshape(b, [1, b1, 1, b2])), [a1 * b1, a2 * b2]);
}

/** Per-adapter layout of LoKr's factors. */
export interface LokrSpec extends LycorisSpec {
  decomposeBoth: boolean;
  decomposeFactor: number;
}

export class LokrLinear extends LycorisLinear {
  protected readonly method = 'LoKr';

  protected create(name: string, spec: LycorisSpec): void {
    const { decomposeBoth, decomposeFactor } = spec as LokrSpec;
    const { r, init } = spec;
    const [l, k] = factorization(this.outFeatures, decomposeFactor);
    const [m, n] = factorization(this.inFeatures, decomposeFactor);
    const useW1 = !(decomposeBoth && r < Math.max(l, m) / 2);
    const useW2 = !(r < Math.max(k, n) / 2);
    // Which tensor starts at zero so that ΔW = 0: W1's first factor (PEFT), W2's last ("lycoris"), none (false).
    const zeroW1 = init === true;
    const zeroW2 = init === 'lycoris';
    const make = (shape: [number, number], zero: boolean) => (zero ? zeros(shape) : kaimingUniform(shape));
    const entries: [string, Tensor][] = useW1
      ? [['lokr_w1', make([l, m], zeroW1)]]
      : [
          ['lokr_w1_a', make([l, r], zeroW1)],
          ['lokr_w1_b', kaimingUniform([r, m])],
        ];
    entries.push(
      ...((useW2
        ? [['lokr_w2', make([k, n], zeroW2)]]
        : [
            ['lokr_w2_a', kaimingUniform([k, r])],
            ['lokr_w2_b', make([r, n], zeroW2)],
          ]) as [string, Tensor][]),
    );
    this.specs.set(name, spec);
    this.setAdapterTensors(name, entries);
  }

  protected structured(name: string): F32 {
    const factor = (w: 'w1' | 'w2'): Tensor =>
      this.hasTensor(name, `lokr_${w}`) ? this.tensor(name, `lokr_${w}`) : matmul(this.tensor(name, `lokr_${w}_a`), this.tensor(name, `lokr_${w}_b`));
    return kron(factor('w1'), factor('w2'));
  }
}
