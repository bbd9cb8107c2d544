/**
 * LoHa (FedPara's low-rank Hadamard product; PEFT `LOHA`): ΔW = (α/r)·(W1a·W1b) ⊙ (W2a·W2b), with W1a, W2a
 * [out, r] (`hada_w1_a`, `hada_w2_a`) and W1b, W2b [r, in] (`hada_w1_b`, `hada_w2_b`). The Hadamard product of two
 * rank-r matrices has rank up to r², so ΔW is materialised and applied as `x·ΔWᵀ`.
 * Init (PEFT): W1a, W1b, W2a Kaiming-uniform, W2b zero (ΔW = 0); `init_weights: false`: all four random.
 */
import { matmul, mul, zeros, type Tensor } from '../../engine/index.js';
import { kaimingUniform, type F32 } from '../common/linear-adapter.js';
import { LycorisLinear, type LycorisSpec } from '../common/lycoris.js';

export class LohaLinear extends LycorisLinear {
  protected readonly method = 'LoHa';

  protected create(name: string, spec: LycorisSpec): void {
    const { inFeatures: inF, outFeatures: outF } = this;
    this.specs.set(name, spec);
    this.setAdapterTensors(name, [
      ['hada_w1_a', kaimingUniform([outF, spec.r])],
      ['hada_w1_b', kaimingUniform([spec.r, inF])],
      ['hada_w2_a', kaimingUniform([outF, spec.r])],
      ['hada_w2_b', spec.init === false ? kaimingUniform([spec.r, inF]) : zeros([spec.r, inF])],
    ]);
  }

  protected structured(name: string): F32 {
    const t = (k: string): Tensor => this.tensor(name, k);
    return mul(matmul(t('hada_w1_a'), t('hada_w1_b')), matmul(t('hada_w2_a'), t('hada_w2_b')));
  }
}
