/**
 * In-place folds of per-channel scales and shifts into a Linear layer's parameters — the merge of (IA)³ and SSF:
 * `W ← diag(s)·W` (scale along the output axis: rows of W [out, in]) or `W ← W·diag(s)` (along the input axis), and
 * `b ← s∘b + t`. f32 weights are updated directly; bf16 ones through an f32 copy rounded back.
 */
import { backend, castTo, keep, noGrad, zeros, type Tensor } from '../../engine/index.js';
import type { Linear } from '../../nn/index.js';

/** Runs `fn` on the f32 values of `t` (a copy for bf16, written back rounded). */
function editF32(t: Tensor, what: string, fn: (a: Float32Array) => void): void {
  if (!t.isContiguous()) throw new Error(`${what}: ${t.describe()} must be contiguous`);
  if (t.dtype === 'f32') return fn((t.data as Float32Array).subarray(0, t.size));
  if (t.dtype !== 'bf16') throw new Error(`${what}: cannot fold into a ${t.describe()} (f32 or bf16 only)`);
  const c = castTo(t, 'f32');
  fn((c.data as Float32Array).subarray(0, c.size));
  backend().castF32ToBF16(c.data, t.data as Uint16Array, t.size);
  c.dispose();
}

/**
 * Multiplies (or, with `divide`, divides) `weight` — laid out [out, in], or [in, out] when `fanInFanOut` — by `s`
 * along its `axis` ('out': each output row, 'in': each input column).
 */
export function scaleWeight(weight: Tensor, s: Float32Array, axis: 'out' | 'in', fanInFanOut: boolean, divide: boolean): void {
  const [rows, cols] = weight.shape as [number, number];
  const perRow = (axis === 'out') !== fanInFanOut; // the scaled axis is the stored rows
  if (s.length !== (perRow ? rows : cols)) throw new Error(`fold: scale of length ${s.length} does not fit ${weight.describe()} along ${axis}`);
  noGrad(() =>
    editF32(weight, 'fold', (w) => {
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) {
          const f = s[perRow ? i : j]!;
          w[i * cols + j] = divide ? w[i * cols + j]! / f : w[i * cols + j]! * f;
        }
    }),
  );
}

/**
 * `b ← s∘b + t` on `base`'s bias (`undo`: `b ← (b − t)/s`); `s` or `t` may be null (1 or 0). A bias-less layer
 * gets a zero bias first when there is a shift to store.
 */
export function foldBias(base: Linear, s: Float32Array | null, t: Float32Array | null, undo: boolean): void {
  let b = base.bias;
  if (!b) {
    if (!t) return;
    b = keep(zeros([base.outFeatures]));
    base.setParam('bias', b);
  }
  noGrad(() =>
    editF32(b, 'fold bias', (v) => {
      for (let i = 0; i < v.length; i++) v[i] = undo ? (v[i]! - (t?.[i] ?? 0)) / (s?.[i] ?? 1) : v[i]! * (s?.[i] ?? 1) + (t?.[i] ?? 0);
    }),
  );
}
