/** AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient, one fused kernel per tensor. */
import { backend } from '../backend/index.js';
import { keep } from '../scope.js';
import { zeros, type Tensor } from '../tensor.js';
import { Optimizer, type ParamGroup } from './optimizer.js';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const adamwDefaults: AdamWOptions = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export class AdamW extends Optimizer<AdamWOptions> {
  /** First and second moments per parameter (f32, same shape). */
  readonly state = new Map<Tensor, { m: Tensor<'f32'>; v: Tensor<'f32'> }>();

  constructor(params: Tensor<'f32'>[] | ParamGroup<AdamWOptions>[], options: Partial<AdamWOptions> = {}) {
    super(params, { ...adamwDefaults, ...options });
  }

  step(): void {
    this.stepCount++;
    for (const { params, options: o } of this.groups) {
      const bc1 = 1 - o.beta1 ** this.stepCount;
      const bc2 = 1 - o.beta2 ** this.stepCount;
      for (const p of params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        if (!s) this.state.set(p, (s = { m: keep(zeros(p.shape) as Tensor<'f32'>), v: keep(zeros(p.shape) as Tensor<'f32'>) }));
        backend().adamw(p.data, p.grad.data, s.m.data, s.v.data, p.size, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, bc1, bc2);
      }
    }
  }
}
