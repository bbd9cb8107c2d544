/** The peftjs tensor engine: tensors, autograd, ops, optimizers and backends. */
import './methods.js';

export { Tensor, tensor, empty, zeros, ones, full, arange, fromStorage, castTo, contiguousCopy, numel } from './tensor.js';
export type { DType } from './dtype.js';
export { tidy, keep } from './scope.js';
export { backward, noGrad, isGradEnabled, record, type GradFn } from './autograd.js';
export { gradcheck, type GradcheckOptions } from './gradcheck.js';
export { Generator, manualSeed, globalGenerator } from './random.js';
export { backend, setBackend, withBackend, nativeAvailable, setNumThreads, nativeExtras, type BackendName } from './backend/index.js';
export { clearPool, pooledByteCount, freshAllocatedBytes } from './pool.js';
export * from './ops/elementwise.js';
export * from './ops/shape.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/softmax.js';
export * from './ops/norm.js';
export * from './ops/rope.js';
export * from './ops/attention.js';
export * from './ops/embedding.js';
export * from './ops/loss.js';
export * from './init.js';
export { AdamW, adamwDefaults, type AdamWOptions } from './optim/adamw.js';
export { SGD, sgdDefaults, type SGDOptions } from './optim/sgd.js';
export { Optimizer, type ParamGroup } from './optim/optimizer.js';
export { clipGradNorm } from './optim/clip.js';
export { svd, solve, type Svd } from './linalg.js';
