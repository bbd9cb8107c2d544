/**
 * IncreLoRA's rank allocator (Zhang et al. 2023, Algorithm 1), driven by the trainer once per optimizer step: it
 * grows the total active rank from Σ init_r to the budget target_r × #modules, adding components to the modules
 * that score highest. Importance scores and the orthogonal regulariser are AdaLoRA's ({@link TripletImportance});
 * a module scores the mean triplet score of its active components.
 *
 * Schedule (T = total_step, final = T − tfinal), linear growth:
 *   step ≤ tinit: Σ init_r;  tinit < step < final: b(step) = init + ⌊(target − init)·(step − tinit)/(final − tinit)⌋,
 *   grown every deltaT steps;  step = final: grown to the target;  step > final: ranks fixed.
 * A growth step activates (b − current total) components: one each for the highest-scoring modules that still
 * have an inactive one, in score order, going round again only if more are due than such modules exist.
 * Importance is smoothed every step until the budget is reached; the active pattern is kept in the config's
 * rank_pattern.
 *
 * Trainer protocol (as AdaLoRA's): per step, loss = task loss + {@link IncreLoraAllocator.orthRegularization};
 * backward; optimizer step; {@link IncreLoraAllocator.updateAndAllocate}(step) with the 1-based number of optimizer
 * steps done; then zero the gradients.
 */
import type { PeftModel } from '../model.js';
import { TripletImportance } from '../adalora/index.js';
import type { IncreLoraConfig } from './config.js';
import { IncreLoraLinear, activePattern } from './layer.js';

export class IncreLoraAllocator extends TripletImportance<IncreLoraConfig, IncreLoraLinear> {
  /** Σ active components when the allocator was made (Σ init_r for a fresh adapter). */
  readonly initBudget: number;
  /** target_r × #modules. */
  readonly targetBudget: number;

  constructor(peft: PeftModel, adapterName = 'default') {
    super(peft, adapterName, 'INCRELORA', IncreLoraLinear, 'IncreLoraAllocator');
    this.initBudget = this.ranks().total;
    this.targetBudget = this.config.target_r * this.layers.length;
    if (this.initBudget > this.targetBudget)
      throw new Error(`IncreLoraAllocator: adapter '${adapterName}' already has ${this.initBudget} active components, over the budget ${this.targetBudget}`);
    // From here on the layers save their active components only, and the config says which.
    for (const [, layer] of this.layers) layer.setActiveRank(adapterName, layer.keptRank(adapterName));
    this.recordPattern();
  }

  /** The budget at `step` and whether this step grows the ranks towards it. */
  budgetSchedule(step: number): { budget: number; grow: boolean } {
    const { tinit, tfinal, total_step: total, deltaT } = this.config;
    const final = total - tfinal;
    if (step <= tinit) return { budget: this.initBudget, grow: false };
    if (step >= final) return { budget: this.targetBudget, grow: step === final };
    const budget = this.initBudget + Math.floor(((this.targetBudget - this.initBudget) * (step - tinit)) / (final - tinit));
    return { budget, grow: step % deltaT === 0 };
  }

  /**
   * One step of the schedule: call after the optimizer step and before the gradients are zeroed, with `step` the
   * 1-based number of optimizer steps done. Returns the total active rank.
   */
  override updateAndAllocate(step: number): number {
    const final = this.config.total_step - this.config.tfinal;
    let total = this.ranks().total;
    if (step > final || total >= this.targetBudget) return total;
    this.updateImportance();
    const { budget, grow } = this.budgetSchedule(step);
    if (grow && budget > total) {
      total += this.activate(budget - total);
      this.recordPattern();
    }
    if (step === final || total >= this.targetBudget) this.resetImportance();
    return total;
  }

  /** Module scores: the mean triplet score of each module's active components. */
  moduleScores(): number[] {
    return this.tripletScores().map((s, m) => {
      const k = this.layers[m]![1].keptRank(this.adapterName);
      return k ? s.subarray(0, k).reduce((a, b) => a + b, 0) / k : 0;
    });
  }

  /** Activates up to `n` components, one per module in score order (round again while more are due); returns how many. */
  private activate(n: number): number {
    const scores = this.moduleScores();
    const order = scores.map((_, m) => m).sort((x, y) => scores[y]! - scores[x]! || x - y);
    const name = this.adapterName;
    let added = 0;
    for (let grew = true; added < n && grew; ) {
      grew = false;
      for (const m of order) {
        if (added === n) break;
        const layer = this.layers[m]![1];
        const k = layer.keptRank(name);
        if (k === layer.allocatedRank(name)) continue;
        layer.setActiveRank(name, k + 1);
        added++;
        grew = true;
      }
    }
    return added;
  }

  /** Activates the components `pattern` marks (ranks only grow from the current ones), and records the pattern. */
  protected override applyPattern(pattern: Record<string, boolean[]>): void {
    for (const [path, layer] of this.layers) layer.setActiveRank(this.adapterName, pattern[`${path}.lora_E`]!.filter(Boolean).length);
    this.recordPattern();
  }

  /** Writes the active pattern into the config's rank_pattern. */
  private recordPattern(): void {
    this.config.rank_pattern = Object.fromEntries(
      this.layers.map(([path, l]) => [`${path}.lora_E`, activePattern(l.keptRank(this.adapterName), l.allocatedRank(this.adapterName))]),
    );
  }
}
