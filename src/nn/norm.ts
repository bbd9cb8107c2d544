/** Normalisation layers over the last axis. */
import { layerNorm, rmsNorm, type Tensor } from '../engine/index.js';
import { Module } from './module.js';

/** RMSNorm as in Llama: `x / √(mean(x²) + eps) · weight`. */
export class RMSNorm extends Module {
  constructor(
    weight: Tensor,
    readonly eps: number,
  ) {
    super();
    this.addParameter('weight', weight);
  }

  get weight(): Tensor {
    return this.param('weight')!;
  }

  forward(x: Tensor): Tensor<'f32'> {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** LayerNorm with optional affine weight and bias (GPT-2, BERT). */
export class LayerNorm extends Module {
  constructor(
    weight: Tensor | null,
    bias: Tensor | null,
    readonly eps: number,
  ) {
    super();
    this.addParameter('weight', weight);
    this.addParameter('bias', bias);
  }

  forward(x: Tensor): Tensor<'f32'> {
    return layerNorm(x, this.param('weight'), this.param('bias'), this.eps);
  }
}
