/** Embedding lookup (row gather) with a scatter-add gradient. */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import { empty, zeros, type Tensor } from '../tensor.js';
import { requireDType, requireRank } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

/** `table[ids]`: ids (i32, any shape) → [...ids.shape, dim] f32; the table may be f32 or bf16. */
export function embedding(table: Tensor, ids: Tensor): F32 {
  requireDType('embedding', table, 'f32', 'bf16');
  requireRank('embedding', table, 2, 'table');
  requireDType('embedding', ids, 'i32');
  const [vocab, dim] = table.shape as [number, number];
  const t = contiguous(table);
  const i = contiguous(ids);
  const out = empty([...ids.shape, dim]);
  backend().embedding(t.data as Float32Array | Uint16Array, t.dtype === 'bf16', i.data as Int32Array, out.data, ids.size, dim, vocab);
  record(out, 'embedding', [table], (gy) => {
    const g = contiguous(gy) as F32;
    const gt = zeros([vocab, dim]) as F32;
    backend().embeddingBackward(i.data as Int32Array, g.data, gt.data, ids.size, dim);
    if (g !== gy) g.dispose();
    return [gt];
  });
  return out;
}
