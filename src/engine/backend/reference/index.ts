/**
 * The pure-TypeScript reference backend: the oracle the native kernels are tested against. No Node imports and no
 * dependencies, so it also runs in a browser. One module per kernel family.
 */
import type { Kernels } from '../kernels.js';
import { attention, attentionBackward } from './attention.js';
import { affine, axpy, castBF16ToF32, castF16ToF32, castF32ToBF16, copyStrided, fill } from './copy.js';
import { binary, dropout, swiglu, swigluBackward, unary, unaryBackward, where } from './elementwise.js';
import { embedding, embeddingBackward } from './embedding.js';
import { gemm } from './gemm.js';
import { crossEntropy, crossEntropyBackward } from './loss.js';
import { solve, svd } from './linalg.js';
import { loraGather } from './lora-gather.js';
import { castF32ToF16, keepMagnitudeBand, magnitudeBrackets, magnitudeGather, magnitudeHistogram, magnitudeRankIndex, tiesCombine, weightedSum } from './merge.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './norm.js';
import { adamw, sgd } from './optim.js';
import { sum, sumSquares } from './reduce.js';
import { rope } from './rope.js';
import { softmax, softmaxBackward } from './softmax.js';
import { getNumThreads, setNumThreads } from './threads.js';

/** The reference implementation of every kernel in the contract. */
export const reference: Kernels = {
  name: 'reference',
  setNumThreads,
  getNumThreads,
  copyStrided,
  castF32ToBF16,
  castBF16ToF32,
  castF16ToF32,
  fill,
  affine,
  axpy,
  gemm,
  binary,
  unary,
  unaryBackward,
  swiglu,
  swigluBackward,
  where,
  dropout,
  sum,
  sumSquares,
  softmax,
  softmaxBackward,
  rmsNorm,
  rmsNormBackward,
  layerNorm,
  layerNormBackward,
  rope,
  attention,
  attentionBackward,
  embedding,
  embeddingBackward,
  crossEntropy,
  crossEntropyBackward,
  loraGather,
  svd,
  solve,
  adamw,
  sgd,
  castF32ToF16,
  weightedSum,
  magnitudeHistogram,
  magnitudeBrackets,
  magnitudeGather,
  magnitudeRankIndex,
  keepMagnitudeBand,
  tiesCombine,
};
