/**
 * (IA)³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
 * Learning", §3.3): learned vectors rescale activations elementwise — keys and values `l_k ⊙ k`, `l_v ⊙ v`, and the
 * FFN intermediate `l_ff ⊙ γ(W₁x)` before W₂. As PEFT does, a non-feedforward layer scales its output,
 * `y = l ⊙ base(x)` with `ia3_l` [out, 1], and a feedforward layer its input, `y = base(l ⊙ x)` with `ia3_l` [1, in].
 * Both are diagonal rescalings of W, so merging is exact: `W ← diag(l)·W` (and b ← l ⊙ b) or `W ← W·diag(l)`.
 */
import { mul, ones, randn, reshape, type Tensor } from '../../engine/index.js';
import type { Linear } from '../../nn/index.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { foldBias, scaleWeight } from '../common/fold.js';

export class Ia3Linear extends AdaptedLinear {
  protected readonly method = 'IA3';

  constructor(
    base: Linear,
    readonly isFeedforward: boolean,
  ) {
    super(base);
  }

  /** Adds adapter `name`: ones (`init` true, the identity) or N(0, 1). */
  addAdapter(name: string, init: boolean): void {
    const shape = this.isFeedforward ? [1, this.base.inFeatures] : [this.base.outFeatures, 1];
    this.setAdapterTensors(name, [['ia3_l', init ? ones(shape) : randn(shape)]]);
  }

  /** Adapter `name`'s vector as a flat copy. */
  private vector(name: string): Float32Array {
    return this.tensor(name, 'ia3_l').toTyped() as Float32Array;
  }

  /** Multiplicative: scales the weight by the vector (`undo` divides it back out), and the bias when it scales outputs. */
  protected fold(name: string, undo: boolean, base: Linear): void {
    scaleWeight(base.weight, this.vector(name), this.isFeedforward ? 'in' : 'out', base.fanInFanOut, undo);
    if (!this.isFeedforward && base.bias) foldBias(base, this.vector(name), null, undo);
  }

  forward(x: Tensor): Tensor<'f32'> {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    const dim = this.isFeedforward ? this.base.inFeatures : this.base.outFeatures;
    let l: Tensor | null = null;
    for (const n of names) {
      const v = reshape(this.tensor(n, 'ia3_l'), [dim]);
      l = l ? mul(l, v) : v;
    }
    return this.isFeedforward ? this.base.forward(mul(x, l!)) : mul(this.base.forward(x), l!);
  }
}
