/**
 * SSF (Lian et al. 2022, "Scaling & Shifting Your Features", eq. 2): after an operation, `y = γ ⊙ x + β` with learned
 * γ, β per output channel. Applied here to the targeted Linear layers' outputs, `y = γ ⊙ (W·x + b) + β`, which folds
 * exactly into the layer (eq. 4, re-parameterisation): `W ← diag(γ)·W`, `b ← γ ⊙ b + β` — the folded model runs the
 * base forward with no extra cost. A bias-less layer (Llama) gains a bias when folded.
 */
import { add, mul, ones, randn, zeros, type Tensor } from '../../engine/index.js';
import type { Linear } from '../../nn/index.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { foldBias, scaleWeight } from '../common/fold.js';

export class SsfLinear extends AdaptedLinear {
  protected readonly method = 'SSF';

  /** Adds adapter `name`: the identity (`init` true) or the paper's N(1, 0.02²) / N(0, 0.02²). */
  addAdapter(name: string, init: boolean): void {
    const n = this.base.outFeatures;
    this.setAdapterTensors(name, [
      ['ssf_scale', init ? ones([n]) : randn([n], 0.02, 1)],
      ['ssf_shift', init ? zeros([n]) : randn([n], 0.02)],
    ]);
  }

  /** Eq. 4: W ← diag(γ)·W, b ← γ ⊙ b + β (`undo` divides and subtracts back out). */
  protected fold(name: string, undo: boolean, base: Linear): void {
    const s = this.tensor(name, 'ssf_scale').toTyped() as Float32Array;
    scaleWeight(base.weight, s, 'out', base.fanInFanOut, undo);
    foldBias(base, s, this.tensor(name, 'ssf_shift').toTyped() as Float32Array, undo);
  }

  forward(x: Tensor): Tensor<'f32'> {
    let y = this.base.forward(x);
    for (const n of this.forwardAdapters() ?? []) y = add(mul(y, this.tensor(n, 'ssf_scale')), this.tensor(n, 'ssf_shift'));
    return y;
  }
}
