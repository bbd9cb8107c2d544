/** A lookup table of row vectors (token or position embeddings). */
import { embedding, type Tensor } from '../engine/index.js';
import { Module } from './module.js';

export class Embedding extends Module {
  /** @param weight [vocab, dim], f32 or bf16. */
  constructor(weight: Tensor) {
    super();
    this.addParameter('weight', weight);
  }

  get weight(): Tensor {
    return this.param('weight')!;
  }

  get numEmbeddings(): number {
    return this.weight.shape[0]!;
  }

  get embeddingDim(): number {
    return this.weight.shape[1]!;
  }

  /** ids (i32, any shape) → [...ids.shape, dim] f32. */
  forward(ids: Tensor): Tensor<'f32'> {
    return embedding(this.weight, ids);
  }
}
