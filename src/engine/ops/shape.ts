/**
 * Shape ops. Views (reshape of contiguous data, permute/transpose, narrow, expand, unsqueeze/squeeze) share storage;
 * `contiguous`, `cast`, `concat` copy. All are differentiable.
 */
import { backend } from '../backend/index.js';
import { record } from '../autograd.js';
import type { DType } from '../dtype.js';
import { castTo, contiguousCopy, contiguousStrides, empty, numel, view, zeros, type Tensor } from '../tensor.js';
import { normAxis } from './broadcast.js';
import { sumTo } from './elementwise.js';

type F32 = Tensor<'f32'>;

/** A contiguous tensor with the same values: `x` itself when already contiguous. */
export function contiguous<D extends DType>(x: Tensor<D>): Tensor<D> {
  if (x.isContiguous()) return x;
  const out = contiguousCopy(x);
  record(out, 'contiguous', [x], (gy) => [gy]);
  return out;
}

/** Converts to `dtype`; gradients pass through unchanged (in f32), like autocast. */
export function cast<D extends DType>(x: Tensor, dtype: D): Tensor<D> {
  if (x.dtype === dtype) return x as Tensor<D>;
  const out = castTo(x, dtype);
  record(out, `cast(${dtype})`, [x], (gy) => [gy]);
  return out;
}

/** Same data, new shape (one dimension may be −1). Copies only when `x` is not contiguous. */
export function reshape<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const resolved = resolveShape('reshape', x, shape);
  if (resolved.length === x.rank && resolved.every((d, i) => d === x.shape[i])) return x;
  const c = contiguous(x);
  const out = view(c, resolved, contiguousStrides(resolved), c.offset);
  record(out, 'reshape', [c], (gy) => [reshape(gy, c.shape) as F32]);
  return out;
}

function resolveShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const s = [...shape];
  const hole = s.indexOf(-1);
  const known = numel(s.filter((d) => d !== -1));
  if (hole >= 0) s[hole] = known === 0 ? 0 : x.size / known;
  if (numel(s) !== x.size || s.some((d) => !Number.isInteger(d) || d < 0))
    throw new Error(`${op}: cannot view ${x.describe()} (${x.size} elements) as [${shape.join(', ')}]`);
  return s;
}

/** Collapses dimensions `start..end` into one. */
export function flatten<D extends DType>(x: Tensor<D>, start = 0, end = -1): Tensor<D> {
  const s = normAxis('flatten', start, x.rank);
  const e = normAxis('flatten', end, x.rank);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Reorders dimensions (a view). */
export function permute<D extends DType>(x: Tensor<D>, dims: readonly number[]): Tensor<D> {
  const axes = dims.map((d) => normAxis('permute', d, x.rank));
  if (axes.length !== x.rank || new Set(axes).size !== x.rank)
    throw new Error(`permute: [${dims.join(', ')}] is not a permutation of the ${x.rank} dimensions of ${x.describe()}`);
  const out = view(x, axes.map((a) => x.shape[a]!), axes.map((a) => x.strides[a]!), x.offset);
  const inverse = new Array<number>(axes.length);
  axes.forEach((a, i) => (inverse[a] = i));
  record(out, 'permute', [x], (gy) => [permute(gy, inverse)]);
  return out;
}

/** Swaps two dimensions (a view). */
export function transpose<D extends DType>(x: Tensor<D>, dim0 = -2, dim1 = -1): Tensor<D> {
  const a = normAxis('transpose', dim0, x.rank);
  const b = normAxis('transpose', dim1, x.rank);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** Elements `start .. start+length−1` along `dim` (a view). */
export function narrow<D extends DType>(x: Tensor<D>, dim: number, start: number, length: number): Tensor<D> {
  const d = normAxis('narrow', dim, x.rank);
  if (!(Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 0 && start + length <= x.shape[d]!))
    throw new Error(`narrow: range [${start}, ${start + length}) is outside dimension ${d} of ${x.describe()}`);
  const shape = [...x.shape];
  shape[d] = length;
  const out = view(x, shape, x.strides, x.offset + start * x.strides[d]!);
  record(out, 'narrow', [x], (gy) => {
    const gx = zeros(x.shape) as F32;
    const slot = narrow(gx, d, start, length);
    backend().copyStrided(gy.data, [...gy.strides], slot.data, [...slot.strides], [...gy.shape]);
    slot.dispose();
    return [gx];
  });
  return out;
}

/** Splits `x` along `dim` into views of the given sizes (or equal chunks of `sizes` elements). */
export function split<D extends DType>(x: Tensor<D>, sizes: number | readonly number[], dim = 0): Tensor<D>[] {
  const d = normAxis('split', dim, x.rank);
  const n = x.shape[d]!;
  const list = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : sizes;
  if (list.reduce((a, b) => a + b, 0) !== n)
    throw new Error(`split: sizes [${list.join(', ')}] do not add up to dimension ${d} of ${x.describe()}`);
  let start = 0;
  return list.map((len) => {
    const part = narrow(x, d, start, len);
    start += len;
    return part;
  });
}

/** Joins tensors along `dim` (a copy). All other dimensions must match. */
export function concat(xs: readonly Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors given');
  const first = xs[0]!;
  const d = normAxis('concat', dim, first.rank);
  for (const x of xs)
    if (x.dtype !== first.dtype || x.rank !== first.rank || x.shape.some((s, i) => i !== d && s !== first.shape[i]))
      throw new Error(`concat: ${x.describe()} does not match ${first.describe()} outside dimension ${d}`);
  const shape = [...first.shape];
  shape[d] = xs.reduce((a, x) => a + x.shape[d]!, 0);
  const out = empty(shape, first.dtype);
  let start = 0;
  const starts: number[] = [];
  for (const x of xs) {
    starts.push(start);
    const slot = view(out, x.shape, out.strides, out.offset + start * out.strides[d]!);
    backend().copyStrided(x.data, [...x.strides], slot.data, [...slot.strides], [...x.shape]);
    slot.dispose();
    start += x.shape[d]!;
  }
  record(out, 'concat', xs, (gy) => xs.map((x, i) => (x.requiresGrad ? contiguous(narrow(gy, d, starts[i]!, x.shape[d]!)) : null)));
  return out;
}

/** Inserts a dimension of size 1 at `dim` (a view). */
export function unsqueeze<D extends DType>(x: Tensor<D>, dim: number): Tensor<D> {
  const d = normAxis('unsqueeze', dim, x.rank + 1);
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.rank ? x.strides[d]! * x.shape[d]! : 1);
  return unitView(x, shape, strides);
}

/** Removes dimension `dim` of size 1 (a view). */
export function squeeze<D extends DType>(x: Tensor<D>, dim: number): Tensor<D> {
  const d = normAxis('squeeze', dim, x.rank);
  if (x.shape[d] !== 1) throw new Error(`squeeze: dimension ${d} of ${x.describe()} is not 1`);
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(d, 1);
  strides.splice(d, 1);
  return unitView(x, shape, strides);
}

function unitView<D extends DType>(x: Tensor<D>, shape: number[], strides: number[]): Tensor<D> {
  const out = view(x, shape, strides, x.offset);
  record(out, 'reshape', [x], (gy) => [reshape(gy, x.shape) as F32]);
  return out;
}

/** Broadcasts to `shape` without copying (zero strides); −1 keeps a dimension. */
export function expand<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  if (shape.length < x.rank) throw new Error(`expand: cannot expand ${x.describe()} to fewer dimensions [${shape.join(', ')}]`);
  const lead = shape.length - x.rank;
  const strides = shape.map((s, i) => {
    if (i < lead) return 0;
    const d = x.shape[i - lead]!;
    if (s === -1 || s === d) return x.strides[i - lead]!;
    if (d === 1) return 0;
    throw new Error(`expand: cannot expand ${x.describe()} to [${shape.join(', ')}]`);
  });
  const full = shape.map((s, i) => (s === -1 ? x.shape[i - lead]! : s));
  const out = view(x, full, strides, x.offset);
  record(out, 'expand', [x], (gy) => [sumTo(gy, x.shape)]);
  return out;
}
