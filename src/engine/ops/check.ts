/** Argument checks shared by ops; every error names the op and the tensors involved. */
import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';

export function requireDType(op: string, t: Tensor, ...allowed: DType[]): void {
  if (!allowed.includes(t.dtype))
    throw new Error(`${op}: expected ${allowed.join(' or ')} but got ${t.describe()}`);
}

export function requireRank(op: string, t: Tensor, rank: number, what = 'input'): void {
  if (t.rank !== rank) throw new Error(`${op}: ${what} must have rank ${rank}, got ${t.describe()}`);
}

export function requireShape(op: string, t: Tensor, shape: readonly number[], what = 'input'): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new Error(`${op}: ${what} must have shape [${shape.join(', ')}], got ${t.describe()}`);
}
