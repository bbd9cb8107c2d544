/**
 * AdaLoRA's rank allocator (PEFT `RankAllocator` + `AdaLoraModel.update_and_allocate` and its orthogonal
 * regulariser), driven by the trainer once per optimizer step.
 *
 * Importance of every entry p of A, B, E: I = |p·∂L/∂p|, smoothed Ī ← β1·Ī + (1−β1)·I and its uncertainty
 * Ū ← β2·Ū + (1−β2)·|I − Ī|; score s = Ī·Ū. A triplet (component i of a module) scores s(E_i) + mean_j s(A_ij) +
 * mean_k s(B_ki). The budget (total kept components) follows a cubic schedule from Σ init_r to
 * target_r × #modules:
 *   step ≤ tinit: no pruning;  tinit < step ≤ T − tfinal: b(step) = target + (init − target)·(1 − (step − tinit)/(T − tfinal − tinit))³,
 *   pruning every deltaT steps;  step = T − tfinal: the final mask, stored as the config's rank_pattern;
 *   step > T − tfinal: the final mask re-applied every step (the optimizer would revive masked entries).
 * Pruning zeroes E where the triplet score is among the (Σ init_r − b) lowest.
 *
 * Trainer protocol (as PEFT): per step, loss = task loss + {@link RankAllocator.orthRegularization}; backward;
 * optimizer step; {@link RankAllocator.updateAndAllocate}(step) with the 1-based number of optimizer steps done;
 * then zero the gradients.
 */
import { add, fromStorage, matmul, noGrad, scale, sqrt, square, sub, sum, transpose, type Tensor } from '../../engine/index.js';
import type { PeftModel } from '../model.js';
import type { AdaLoraConfig } from './config.js';
import { AdaLoraLinear } from './layer.js';

type F32 = Tensor<'f32'>;

/** The n×n identity. */
function eye(n: number): F32 {
  const d = new Float32Array(n * n);
  for (let i = 0; i < n; i++) d[i * n + i] = 1;
  return fromStorage(d, [n, n], 'f32');
}

interface Stats {
  avg: Float32Array;
  unc: Float32Array;
}

export class RankAllocator {
  readonly config: AdaLoraConfig;
  /** Adapted modules by path. */
  readonly layers: [string, AdaLoraLinear][];
  /** Σ init_r over the modules. */
  readonly initBudget: number;
  /** target_r × #modules. */
  readonly targetBudget: number;
  private stats = new Map<Tensor, Stats>();

  constructor(
    readonly peft: PeftModel,
    readonly adapterName = 'default',
  ) {
    const config = peft.peftConfig.get(adapterName);
    if (!config || config.peft_type !== 'ADALORA') throw new Error(`RankAllocator: adapter '${adapterName}' is not an AdaLoRA adapter`);
    this.config = config as AdaLoraConfig;
    this.layers = peft.model
      .namedModules()
      .filter((e): e is [string, AdaLoraLinear] => e[1] instanceof AdaLoraLinear && e[1].adapterNames().includes(adapterName));
    if (!this.layers.length) throw new Error(`RankAllocator: adapter '${adapterName}' adapts no module`);
    this.initBudget = this.layers.reduce((s, [, l]) => s + l.svdFactors(adapterName).e.shape[0]!, 0);
    this.targetBudget = this.config.target_r * this.layers.length;
  }

  /** The budget at `step` and whether this step prunes (PEFT's `budget_schedule`). */
  budgetSchedule(step: number): { budget: number; mask: boolean } {
    const { tinit, tfinal, total_step: total, deltaT } = this.config;
    if (step <= tinit) return { budget: this.initBudget, mask: false };
    if (step > total - tfinal) return { budget: this.targetBudget, mask: true };
    const coeff = 1 - (step - tinit) / (total - tfinal - tinit);
    return { budget: Math.floor((this.initBudget - this.targetBudget) * coeff ** 3 + this.targetBudget), mask: step % deltaT === 0 };
  }

  /**
   * The orthogonal regulariser, weighted: orth_reg_weight · mean over A and B of ‖P·Pᵀ − I‖_F (A·Aᵀ for A,
   * Bᵀ·B for B). Add it to the loss before backward.
   */
  orthRegularization(): F32 {
    const terms: F32[] = [];
    for (const [, layer] of this.layers) {
      const { a, b } = layer.svdFactors(this.adapterName);
      for (const cov of [matmul(a, transpose(a)), matmul(transpose(b), b)]) terms.push(sqrt(sum(square(sub(cov, eye(cov.shape[0]!))))));
    }
    return scale(terms.reduce((s, t) => add(s, t)), this.config.orth_reg_weight / terms.length);
  }

  /** Updates the smoothed importance of every A, B, E entry from its current gradient. */
  private updateImportance(): void {
    const { beta1, beta2 } = this.config;
    for (const [path, layer] of this.layers)
      for (const p of Object.values(layer.svdFactors(this.adapterName))) {
        if (!p.grad) throw new Error(`RankAllocator: ${path} has no gradient; call updateAndAllocate after backward and before zeroing gradients`);
        let s = this.stats.get(p);
        if (!s) this.stats.set(p, (s = { avg: new Float32Array(p.size), unc: new Float32Array(p.size) }));
        const g = p.grad.data;
        for (let i = 0; i < p.size; i++) {
          const ipt = Math.abs(p.data[i]! * g[i]!);
          s.avg[i] = beta1 * s.avg[i]! + (1 - beta1) * ipt;
          s.unc[i] = beta2 * s.unc[i]! + (1 - beta2) * Math.abs(ipt - s.avg[i]!);
        }
      }
  }

  /** Triplet scores of every module (one per component). */
  private tripletScores(): Float64Array[] {
    return this.layers.map(([, layer]) => {
      const { a, e, b } = layer.svdFactors(this.adapterName);
      const score = (t: Tensor, i: number) => {
        const s = this.stats.get(t)!;
        return s.avg[i]! * s.unc[i]!;
      };
      const [r, inF] = a.shape as [number, number];
      const outF = b.shape[0]!;
      return Float64Array.from({ length: r }, (_, i) => {
        let sa = 0;
        for (let j = 0; j < inF; j++) sa += score(a, i * inF + j);
        let sb = 0;
        for (let k = 0; k < outF; k++) sb += score(b, k * r + i);
        return score(e, i) + sa / inF + sb / outF;
      });
    });
  }

  /** Zeroes E below the budget's threshold; returns the rank pattern (kept flags per module). */
  private maskToBudget(budget: number): Record<string, boolean[]> {
    const scores = this.tripletScores();
    const k = this.initBudget - budget;
    // PEFT's kthvalue: the k-th smallest score; every triplet at or below it is pruned.
    const threshold = k > 0 ? Float64Array.from(scores.flatMap((s) => [...s])).sort()[k - 1]! : -Infinity;
    const pattern: Record<string, boolean[]> = {};
    noGrad(() =>
      this.layers.forEach(([path, layer], m) => {
        const kept = [...scores[m]!].map((s) => s > threshold);
        layer.applyRankMask(this.adapterName, kept);
        pattern[`${path}.lora_E`] = kept;
      }),
    );
    return pattern;
  }

  /**
   * One step of the schedule (PEFT's `update_and_allocate`): call after the optimizer step and before the
   * gradients are zeroed, with `step` the 1-based number of optimizer steps done. Returns the current budget.
   */
  updateAndAllocate(step: number): number {
    const final = this.config.total_step - this.config.tfinal;
    const { budget, mask } = this.budgetSchedule(step);
    if (step < final) {
      this.updateImportance();
      if (mask) this.config.rank_pattern = this.maskToBudget(budget);
    } else if (step === final) {
      this.updateImportance();
      this.config.rank_pattern = this.maskToBudget(budget);
      this.stats = new Map();
    } else if (this.config.rank_pattern)
      for (const [path, layer] of this.layers) layer.applyRankMask(this.adapterName, this.config.rank_pattern[`${path}.lora_E`]!);
    return budget;
  }

  /** Kept components per module, and their total. */
  ranks(): { perModule: Record<string, number>; total: number } {
    const perModule = Object.fromEntries(this.layers.map(([p, l]) => [p, l.keptRank(this.adapterName)]));
    return { perModule, total: Object.values(perModule).reduce((a, b) => a + b, 0) };
  }
}
