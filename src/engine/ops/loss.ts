/** Cross-entropy fused with log-softmax (one pass over the logits forward, one backward). */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import { empty, fromStorage, type Tensor } from '../tensor.js';
import { requireDType } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (PyTorch's default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' (per-position losses). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Cross-entropy of logits [..., V] against i32 targets [...]. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): F32 {
  requireDType('crossEntropy', logits, 'f32');
  requireDType('crossEntropy', targets, 'i32');
  const V = logits.shape[logits.rank - 1]!;
  if (logits.shape.slice(0, -1).join() !== targets.shape.join())
    throw new Error(`crossEntropy: targets ${targets.describe()} do not match logits ${logits.describe()}`);
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  const N = targets.size;
  const l = contiguous(logits) as F32;
  const t = contiguous(targets);
  const losses = empty([N]);
  const lse = empty([N]);
  const count = backend().crossEntropy(l.data, t.data as Int32Array, losses.data, lse.data, N, V, ignore);
  let out: F32;
  if (reduction === 'none') out = losses;
  else {
    let s = 0;
    for (let i = 0; i < N; i++) s += losses.data[i]!;
    // PyTorch returns NaN for a mean over zero targets; 0 keeps a fully-masked batch harmless.
    const value = reduction === 'sum' ? s : count > 0 ? s / count : 0;
    out = fromStorage(new Float32Array([value]), [], 'f32');
    losses.dispose();
  }
  record(out, 'crossEntropy', [logits], (gy) => {
    const rowGrad = empty([N]);
    if (reduction === 'none') rowGrad.data.set(contiguous(gy).data.subarray(0, N));
    else rowGrad.data.fill(reduction === 'sum' ? gy.data[0]! : count > 0 ? gy.data[0]! / count : 0);
    const gl = empty(l.shape);
    backend().crossEntropyBackward(l.data, t.data as Int32Array, lse.data, rowGrad.data, gl.data, N, V, ignore);
    rowGrad.dispose();
    return [gl];
  });
  return out;
}
