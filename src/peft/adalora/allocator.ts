/**
 * AdaLoRA's rank allocator (PEFT `RankAllocator` + `AdaLoraModel.update_and_allocate` and its orthogonal
 * regulariser), driven by the trainer once per optimizer step. Importance scores and the regulariser are shared
 * with IncreLoRA ({@link TripletImportance}).
 *
 * The budget (total kept components) follows a cubic schedule from Σ init_r to target_r × #modules:
 *   step ≤ tinit: no pruning;  tinit < step ≤ T − tfinal: b(step) = target + (init − target)·(1 − (step − tinit)/(T − tfinal − tinit))³,
 *   pruning every deltaT steps;  step = T − tfinal: the final mask, stored as the config's rank_pattern;
 *   step > T − tfinal: the final mask re-applied every step (the optimizer would revive masked entries).
 * Pruning zeroes E where the triplet score is among the (Σ init_r − b) lowest.
 *
 * Trainer protocol (as PEFT): per step, loss = task loss + {@link RankAllocator.orthRegularization}; backward;
 * optimizer step; {@link RankAllocator.updateAndAllocate}(step) with the 1-based number of optimizer steps done;
 * then zero the gradients.
 */
import { noGrad } from '../../engine/index.js';
import type { PeftModel } from '../model.js';
import type { AdaLoraConfig } from './config.js';
import { AdaLoraLinear } from './layer.js';
import { TripletImportance } from './importance.js';

export class RankAllocator extends TripletImportance<AdaLoraConfig, AdaLoraLinear> {
  /** Σ init_r over the modules. */
  readonly initBudget: number;
  /** target_r × #modules. */
  readonly targetBudget: number;

  constructor(peft: PeftModel, adapterName = 'default') {
    super(peft, adapterName, 'ADALORA', AdaLoraLinear, 'RankAllocator');
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
  override updateAndAllocate(step: number): number {
    const final = this.config.total_step - this.config.tfinal;
    const { budget, mask } = this.budgetSchedule(step);
    if (step < final) {
      this.updateImportance();
      if (mask) this.config.rank_pattern = this.maskToBudget(budget);
    } else if (step === final) {
      this.updateImportance();
      this.config.rank_pattern = this.maskToBudget(budget);
      this.resetImportance();
    } else if (this.config.rank_pattern) this.applyPattern(this.config.rank_pattern);
    return budget;
  }

  /** Masks each layer as `pattern` says (zeroing its pruned E entries). */
  protected override applyPattern(pattern: Record<string, boolean[]>): void {
    for (const [path, layer] of this.layers) layer.applyRankMask(this.adapterName, pattern[`${path}.lora_E`]!);
  }
}
