/**
 * The importance bookkeeping of the SVD-form rank schedules — AdaLoRA's {@link RankAllocator} (pruning) and
 * IncreLoRA's allocator (growth) — and their orthogonal regulariser (PEFT's `RankAllocator.update_ipt` /
 * `calculate_score` and `AdaLoraModel`'s orth loss).
 *
 * Importance of every entry p of A, B, E: I = |p·∂L/∂p|, smoothed Ī ← β1·Ī + (1−β1)·I and its uncertainty
 * Ū ← β2·Ū + (1−β2)·|I − Ī|; score s = Ī·Ū. A triplet (component i of a module) scores s(E_i) + mean_j s(A_ij) +
 * mean_k s(B_ki).
 */
import { add, fromStorage, matmul, scale, sqrt, square, sub, sum, transpose, type Tensor } from '../../engine/index.js';
import type { PeftModel } from '../model.js';
import type { HooksState, TrainingHooks } from '../registry.js';
import type { SvdScheduleConfig } from './config.js';
import type { AdaLoraLinear } from './layer.js';

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

/** Checkpoint names of the SVD factors. */
const FACTOR_NAMES = { a: 'lora_A', e: 'lora_E', b: 'lora_B' } as const;

type RankPattern = Record<string, boolean[]>;

export abstract class TripletImportance<C extends SvdScheduleConfig, L extends AdaLoraLinear> {
  readonly config: C;
  /** Adapted modules by path. */
  readonly layers: [string, L][];
  private stats = new Map<Tensor, Stats>();

  /** `who` names the allocator in errors; `Layer` is the method's layer class, `peftType` its config's type. */
  constructor(
    readonly peft: PeftModel,
    readonly adapterName: string,
    peftType: string,
    Layer: abstract new (...args: never[]) => L,
    protected readonly who: string,
  ) {
    const config = peft.peftConfig.get(adapterName);
    if (!config || config.peft_type !== peftType) throw new Error(`${who}: adapter '${adapterName}' is not a ${peftType} adapter`);
    this.config = config as C;
    this.layers = peft.model.namedModules().filter((e): e is [string, L] => e[1] instanceof Layer && e[1].adapterNames().includes(adapterName));
    if (!this.layers.length) throw new Error(`${who}: adapter '${adapterName}' adapts no module`);
  }

  /**
   * One step of the method's schedule: call after the optimizer step and before the gradients are zeroed, with
   * `step` the 1-based number of optimizer steps done.
   */
  abstract updateAndAllocate(step: number): number;

  /** Gives the layers the components `pattern` (the config's rank_pattern, set) keeps or makes active. */
  protected abstract applyPattern(pattern: RankPattern): void;

  /** The trainer's per-step hooks: the regulariser, the schedule, and the checkpoint state. */
  trainingHooks(): Required<TrainingHooks> {
    return {
      regularizer: () => this.orthRegularization(),
      afterStep: (step) => void this.updateAndAllocate(step),
      state: () => this.state(),
      restore: (state) => this.restore(state),
    };
  }

  /**
   * What a resumed run needs beyond the parameters: the rank pattern (which components are kept / active) and the
   * smoothed importance Ī, Ū of every A, E, B entry (`<module path>.lora_A.avg` / `.unc`; none before the first
   * update or after the schedule ended). Copies.
   */
  state(): HooksState {
    const arrays = new Map<string, Float32Array>();
    for (const [key, t] of this.factors()) {
      const s = this.stats.get(t);
      if (s) arrays.set(`${key}.avg`, s.avg.slice()).set(`${key}.unc`, s.unc.slice());
    }
    return { values: { rank_pattern: structuredClone(this.config.rank_pattern) }, arrays };
  }

  /**
   * Puts back a {@link state} into an allocator made fresh for the same adapter and config: the config's
   * rank_pattern, the layers' masks / active ranks (AdaLoRA's zeroes the masked E entries: restore the parameters
   * after this), and the importance averages.
   */
  restore(state: HooksState): void {
    const pattern = state.values.rank_pattern as RankPattern | null | undefined;
    if (pattern === undefined) throw new Error(`${this.who}.restore: the state has no rank_pattern`);
    const factors = this.factors();
    const known = new Set(factors.flatMap(([key]) => [`${key}.avg`, `${key}.unc`]));
    const unknown = [...state.arrays.keys()].filter((k) => !known.has(k));
    if (unknown.length) throw new Error(`${this.who}.restore: the state holds importance for factors this adapter lacks: ${unknown.join(', ')}`);
    const stats = new Map<Tensor, Stats>();
    for (const [key, t] of factors) {
      const [avg, unc] = [state.arrays.get(`${key}.avg`), state.arrays.get(`${key}.unc`)];
      if (!avg && !unc) continue;
      if (avg?.length !== t.size || unc?.length !== t.size)
        throw new Error(`${this.who}.restore: importance of ${key} has ${avg?.length ?? 0} / ${unc?.length ?? 0} entries, the factor [${t.shape.join(', ')}] has ${t.size}`);
      stats.set(t, { avg: avg.slice(), unc: unc.slice() });
    }
    if (pattern) {
      const missing = this.layers.map(([path]) => `${path}.lora_E`).filter((k) => !pattern[k]);
      if (missing.length) throw new Error(`${this.who}.restore: rank_pattern lacks ${missing.join(', ')}`);
      this.config.rank_pattern = structuredClone(pattern);
      this.applyPattern(pattern);
    }
    this.stats = stats;
  }

  /** Every A, E, B tensor of the adapter with its name (`<module path>.lora_A`). */
  private factors(): [string, F32][] {
    return this.layers.flatMap(([path, layer]) =>
      Object.entries(layer.svdFactors(this.adapterName)).map(([k, t]): [string, F32] => [`${path}.${FACTOR_NAMES[k as keyof typeof FACTOR_NAMES]}`, t]),
    );
  }

  /**
   * The orthogonal regulariser, weighted: orth_reg_weight · mean over A and B of ‖P·Pᵀ − I‖_F (A·Aᵀ for A,
   * Bᵀ·B for B), over the components each layer's forward uses. Add it to the loss before backward.
   */
  orthRegularization(): F32 {
    const terms: F32[] = [];
    for (const [, layer] of this.layers) {
      const { a, b } = layer.activeFactors(this.adapterName);
      for (const cov of [matmul(a, transpose(a)), matmul(transpose(b), b)]) terms.push(sqrt(sum(square(sub(cov, eye(cov.shape[0]!))))));
    }
    return scale(terms.reduce((s, t) => add(s, t)), this.config.orth_reg_weight / terms.length);
  }

  /** Updates the smoothed importance of every A, B, E entry from its current gradient. */
  protected updateImportance(): void {
    const { beta1, beta2 } = this.config;
    for (const [path, layer] of this.layers)
      for (const p of Object.values(layer.svdFactors(this.adapterName))) {
        if (!p.grad) throw new Error(`${this.who}: ${path} has no gradient; call updateAndAllocate after backward and before zeroing gradients`);
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

  /** Forgets the smoothed importance (once the schedule is done). */
  protected resetImportance(): void {
    this.stats = new Map();
  }

  /** Triplet scores of every module (one per component; 0 before any importance update). */
  protected tripletScores(): Float64Array[] {
    return this.layers.map(([, layer]) => {
      const { a, e, b } = layer.svdFactors(this.adapterName);
      const score = (t: Tensor, i: number) => {
        const s = this.stats.get(t);
        return s ? s.avg[i]! * s.unc[i]! : 0; // no importance smoothed yet
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

  /** Kept (AdaLoRA) or active (IncreLoRA) components per module, and their total. */
  ranks(): { perModule: Record<string, number>; total: number } {
    const perModule = Object.fromEntries(this.layers.map(([p, l]) => [p, l.keptRank(this.adapterName)]));
    return { perModule, total: Object.values(perModule).reduce((a, b) => a + b, 0) };
  }
}
