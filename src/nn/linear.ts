/** A fully connected layer `y = x·Wᵀ + b` in the HF/PyTorch weight layout. */
import { linear, transpose, type Tensor } from '../engine/index.js';
import { Module } from './module.js';

export class Linear extends Module {
  /**
   * @param weight [out, in] (or [in, out] when `fanInFanOut`, GPT-2's Conv1D layout); f32, or bf16 for a frozen
   *   base weight (the product then runs in bf16 with fp32 accumulation).
   * @param bias [out] f32, or null.
   * @param fanInFanOut the weight is stored [in, out] (HF `Conv1D`); it is read transposed, never copied.
   */
  constructor(weight: Tensor, bias: Tensor | null = null, readonly fanInFanOut = false) {
    super();
    this.addParameter('weight', weight);
    this.addParameter('bias', bias);
  }

  get weight(): Tensor {
    return this.param('weight')!;
  }

  get bias(): Tensor | null {
    return this.param('bias');
  }

  get inFeatures(): number {
    return this.weight.shape[this.fanInFanOut ? 0 : 1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[this.fanInFanOut ? 1 : 0]!;
  }

  /** The weight as [out, in] (a transposed view for Conv1D layout). */
  weightOutIn(): Tensor {
    return this.fanInFanOut ? transpose(this.weight) : this.weight;
  }

  forward(x: Tensor): Tensor<'f32'> {
    return linear(x, this.weightOutIn(), this.bias);
  }
}
