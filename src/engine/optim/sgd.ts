/** SGD with (Nesterov) momentum and L2 weight decay, PyTorch semantics. */
import { backend } from '../backend/index.js';
import { keep } from '../scope.js';
import { empty, type Tensor } from '../tensor.js';
import { Optimizer, type ParamGroup } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export const sgdDefaults: SGDOptions = { lr: 1e-2, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

export class SGD extends Optimizer<SGDOptions> {
  /** Momentum buffers per parameter. */
  readonly state = new Map<Tensor, Tensor<'f32'>>();

  constructor(params: Tensor<'f32'>[] | ParamGroup<SGDOptions>[], options: Partial<SGDOptions> = {}) {
    super(params, { ...sgdDefaults, ...options });
  }

  step(): void {
    this.stepCount++;
    for (const { params, options: o } of this.groups)
      for (const p of params) {
        if (!p.grad) continue;
        let buf = this.state.get(p);
        const first = !buf;
        if (!buf) this.state.set(p, (buf = keep(empty(p.shape) as Tensor<'f32'>)));
        backend().sgd(p.data, p.grad.data, buf.data, p.size, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, first);
      }
  }
}
