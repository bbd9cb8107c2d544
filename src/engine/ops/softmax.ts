/** Softmax and log-softmax over the last axis. */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import { empty, type Tensor } from '../tensor.js';
import { requireDType } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

function softmaxOp(x: Tensor, log: boolean): F32 {
  const name = log ? 'logSoftmax' : 'softmax';
  requireDType(name, x, 'f32');
  if (x.rank === 0) throw new Error(`${name}: needs at least one dimension, got ${x.describe()}`);
  const c = contiguous(x) as F32;
  const cols = c.shape[c.rank - 1]!;
  const rows = c.size / Math.max(cols, 1);
  const out = empty(c.shape);
  backend().softmax(c.data, out.data, rows, cols, log);
  if (c !== x) c.dispose();
  record(out, name, [x], (gy) => {
    const g = contiguous(gy) as F32;
    const gx = empty(out.shape);
    backend().softmaxBackward(out.data, g.data, gx.data, rows, cols, log);
    if (g !== gy) g.dispose();
    return [gx];
  });
  return out;
}

/** Softmax over the last axis. */
export const softmax = (x: Tensor): F32 => softmaxOp(x, false);
/** Log-softmax over the last axis (numerically stable). */
export const logSoftmax = (x: Tensor): F32 => softmaxOp(x, true);
