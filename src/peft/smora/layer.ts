/**
 * SMoRA ("Each Rank Could be an Expert: Single-Ranked Mixture of Experts LoRA for Multi-Task Learning"): one LoRA of
 * rank r whose ranks are the experts. Per token a router W_r [r, in] scores the ranks, the top k are kept:
 *
 *   t = x·Aᵀ [N, r],   p = softmax(x·W_rᵀ),   g = k · p|topk / Σ p|topk   (zero off the chosen ranks),
 *   y = x·Wᵀ + b + s · (t ⊙ g)·Bᵀ.
 *
 * The factor k keeps a uniform router equal to a plain rank-k LoRA on the chosen ranks. A rank that no token
 * chooses gets exactly zero gradient in its row of A and column of B. The load-balancing loss over ranks is added
 * while a training step collects auxiliary losses.
 */
import { add, div, linear, mul, randn, reshape, softmax, sum, tensor, where, zeros, type Tensor } from '../../engine/index.js';
import { addAuxLoss, loadBalancingLoss, topK } from '../../multitask/routing.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { kaimingUniform } from '../common/linear-adapter.js';

type F32 = Tensor<'f32'>;

export interface SmoraSpec {
  r: number;
  scale: number;
  topK: number;
  auxCoef: number;
  init: boolean;
}

export class SmoraLinear extends AdaptedLinear {
  protected readonly method = 'SMORA';
  private readonly specs = new Map<string, SmoraSpec>();

  addAdapter(name: string, spec: SmoraSpec): void {
    if (!(spec.topK >= 1 && spec.topK <= spec.r)) throw new Error(`SMORA: top_k ${spec.topK} must lie in [1, r = ${spec.r}]`);
    const { inFeatures: inF, outFeatures: outF } = this.base;
    this.setAdapterTensors(name, [
      ['lora_A.weight', kaimingUniform([spec.r, inF])],
      ['lora_B.weight', spec.init ? zeros([outF, spec.r]) : kaimingUniform([outF, spec.r])],
      ['lora_router.weight', randn([spec.r, inF], 0.02)],
    ]);
    this.specs.set(name, spec);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  protected fold(name: string): void {
    throw new Error(`SMORA: adapter '${name}' cannot be merged (its ranks are chosen per token)`);
  }

  /** The rank gates g [N, r] of adapter `name` for rows x2 [N, in] (zero off each token's top-k ranks). */
  gates(name: string, x2: Tensor): F32 {
    const spec = this.specs.get(name)!;
    const N = x2.shape[0]!;
    const probs = softmax(linear(x2, this.tensor(name, 'lora_router.weight')));
    const choice = topK(probs.toTyped() as Float32Array, N, spec.r, spec.topK);
    if (this.training && spec.auxCoef > 0) addAuxLoss(mul(loadBalancingLoss(probs, choice), spec.auxCoef));
    const mask = new Uint8Array(N * spec.r);
    choice.forEach((e, i) => (mask[Math.floor(i / spec.topK) * spec.r + e] = 1));
    const kept = where(tensor(mask, [N, spec.r], 'u8'), probs, 0);
    return mul(div(kept, sum(kept, 1, true)), spec.topK);
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    let y = this.base.forward(x);
    if (!names?.length) return y;
    const inF = this.base.inFeatures;
    const x2 = reshape(x, [x.size / inF, inF]);
    for (const n of names) {
      const t = linear(x2, this.tensor(n, 'lora_A.weight'));
      const d = mul(linear(mul(t, this.gates(n, x2)), this.tensor(n, 'lora_B.weight')), this.specs.get(n)!.scale);
      y = add(y, reshape(d, y.shape));
    }
    return y;
  }
}
