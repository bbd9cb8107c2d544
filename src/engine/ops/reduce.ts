/** Reductions over axes: sum and mean, forward and backward. */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import { contiguousCopy, empty, numel, type Tensor } from '../tensor.js';
import { normAxis } from './broadcast.js';
import { requireDType } from './check.js';
import { affine } from './elementwise.js';
import { contiguous, expand, reshape } from './shape.js';

type F32 = Tensor<'f32'>;

function resolveAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((a) => normAxis(op, a, x.rank)))].sort((a, b) => a - b);
}

/** Sums one run of consecutive axes [first, last] of a contiguous tensor (no autograd). */
function sumRun(x: F32, first: number, last: number): F32 {
  const shape = [...x.shape];
  const outer = numel(shape.slice(0, first));
  const red = numel(shape.slice(first, last + 1));
  const inner = numel(shape.slice(last + 1));
  shape.splice(first, last - first + 1, ...new Array<number>(last - first + 1).fill(1));
  const out = empty(shape);
  backend().sum(x.data, out.data, outer, red, inner);
  return out;
}

/**
 * Sum over `axes` (all when omitted). With `keepdim` the reduced axes stay as size 1.
 * Runs of adjacent axes are reduced in one kernel call.
 */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): F32 {
  requireDType('sum', x, 'f32');
  const list = resolveAxes('sum', x, axes);
  let cur = contiguous(x) as F32;
  for (let i = list.length - 1; i >= 0; ) {
    let j = i;
    while (j > 0 && list[j - 1] === list[j]! - 1) j--;
    const next = sumRun(cur, list[j]!, list[i]!);
    if (cur !== x) cur.dispose();
    cur = next;
    i = j - 1;
  }
  if (cur === x) cur = contiguousCopy(x as F32);
  const kept = cur.shape;
  const out = keepdim ? cur : (reshape(cur, x.shape.filter((_, i) => !list.includes(i))) as F32);
  if (out !== cur) cur.dispose();
  record(out, 'sum', [x], (gy) => {
    const g = reshape(gy, kept);
    const e = expand(g, x.shape);
    const gx = contiguousCopy(e) as F32;
    e.dispose();
    if (g !== gy) g.dispose();
    return [gx];
  });
  return out;
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): F32 {
  const list = resolveAxes('mean', x, axes);
  const count = numel(list.map((a) => x.shape[a]!));
  const s = sum(x, list, keepdim);
  const m = affine(s, 1 / count, 0);
  s.dispose();
  return m;
}
