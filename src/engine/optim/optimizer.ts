/** Parameter groups and the state every optimizer shares. */
import type { Tensor } from '../tensor.js';

/** A set of parameters sharing hyper-parameters; unset fields take the optimizer's defaults. */
export interface ParamGroup<H> {
  params: Tensor<'f32'>[];
  /** Hyper-parameter overrides for this group (e.g. a larger learning rate for LoRA B, as LoRA+ does). */
  options?: Partial<H>;
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly groups: { params: Tensor<'f32'>[]; options: H }[];
  /** Number of `step()` calls so far. */
  stepCount = 0;

  constructor(params: Tensor<'f32'>[] | ParamGroup<H>[], defaults: H) {
    const list = params.length > 0 && 'params' in (params[0] as object) ? (params as ParamGroup<H>[]) : [{ params: params as Tensor<'f32'>[] }];
    this.groups = list.map((g) => ({ params: g.params, options: { ...defaults, ...g.options } }));
    for (const g of this.groups)
      for (const p of g.params)
        if (p.dtype !== 'f32' || !p.requiresGrad)
          throw new Error(`${this.constructor.name}: parameters must be f32 tensors that require grad, got ${p.describe()}`);
  }

  /** Applies one update from the accumulated `.grad` of every parameter (parameters without a grad are skipped). */
  abstract step(): void;

  /** Drops every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const g of this.groups)
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
  }

  /** Sets the learning rate of every group, keeping per-group ratios relative to `base` (for schedulers). */
  setLearningRate(lr: number, base: number): void {
    for (const g of this.groups) g.options.lr = (g.options.lr / base) * lr;
  }
}
