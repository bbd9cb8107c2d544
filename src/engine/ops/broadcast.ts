/** Broadcasting rules (NumPy/PyTorch): shapes align from the right; a dimension of 1 stretches. */
import type { Tensor } from '../tensor.js';

/** The broadcast shape of `a` and `b`, or an error naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new Error(`${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] cannot be broadcast together`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read `t` as if it had `shape` (zero stride along broadcast dimensions). */
export function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  const n = shape.length;
  const out = new Array<number>(n).fill(0);
  for (let i = 0; i < t.rank; i++) {
    const j = n - t.rank + i;
    out[j] = t.shape[i] === 1 && shape[j] !== 1 ? 0 : t.strides[i]!;
  }
  return out;
}

/** The axes of `shape` along which a tensor of `from` shape was broadcast (to sum its gradient over). */
export function broadcastAxes(from: readonly number[], shape: readonly number[]): number[] {
  const axes: number[] = [];
  for (let j = 0; j < shape.length; j++) {
    const i = j - (shape.length - from.length);
    if (i < 0 || (from[i] === 1 && shape[j] !== 1)) axes.push(j);
  }
  return axes;
}

/** Normalises a possibly negative axis against `rank`, with an error naming the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}
