/** Rotary position embeddings (Su et al. 2021, RoFormer eq. 34) applied to [B, T, H, D] heads. */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import { empty, type Tensor } from '../tensor.js';
import { requireDType, requireRank } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

/**
 * Rotates pairs of `x` [B, T, H, D] by the angles whose cosines and sines are `cos`, `sin` ([T, D/2] shared by
 * the batch, or [B, T, D/2] per row). `interleaved` pairs (2i, 2i+1) as llama2.c and Meta checkpoints do;
 * otherwise (i, i + D/2) as HF's `rotate_half`. The backward rotates the gradient back by −θ.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, interleaved: boolean): F32 {
  requireDType('rope', x, 'f32');
  requireRank('rope', x, 4);
  const [B, T, H, D] = x.shape as [number, number, number, number];
  if (D % 2) throw new Error(`rope: head dimension must be even, got ${x.describe()}`);
  const perRow = cos.rank === 3;
  const tableShape = perRow ? [B, T, D / 2] : [T, D / 2];
  for (const t of [cos, sin])
    if (t.dtype !== 'f32' || t.shape.join() !== tableShape.join())
      throw new Error(`rope: angle tables must be f32 [${tableShape.join(', ')}] for input ${x.describe()}, got ${t.describe()}`);
  const c = contiguous(x) as F32;
  const cc = contiguous(cos) as F32;
  const sc = contiguous(sin) as F32;
  const stride = perRow ? T * (D / 2) : 0;
  const out = empty(c.shape);
  backend().rope(c.data, out.data, cc.data, sc.data, B, T, H, D, stride, interleaved, false);
  if (c !== x) c.dispose();
  record(out, 'rope', [x], (gy) => {
    const g = contiguous(gy) as F32;
    const gx = empty(g.shape);
    backend().rope(g.data, gx.data, cc.data, sc.data, B, T, H, D, stride, interleaved, true);
    if (g !== gy) g.dispose();
    return [gx];
  });
  return out;
}
