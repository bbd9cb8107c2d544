/** Element-wise ops with broadcasting, activations, where / masked fill and dropout — forward and backward. */
import { backend } from '../backend/index.js';
import { BinaryOp, UnaryOp } from '../backend/kernels.js';
import { isGradEnabled, needsGrad, record } from '../autograd.js';
import { globalGenerator, type Generator } from '../random.js';
import { empty, full, type Tensor } from '../tensor.js';
import { broadcastAxes, broadcastShapes, broadcastStrides } from './broadcast.js';
import { requireDType } from './check.js';
import { contiguous, reshape } from './shape.js';
import { sum } from './reduce.js';

type F32 = Tensor<'f32'>;

/** Sums a broadcast gradient back to the shape of the input it was broadcast from. */
export function sumTo(g: F32, shape: readonly number[]): F32 {
  const axes = broadcastAxes(shape, g.shape);
  if (axes.length === 0) return g;
  const s = sum(g, axes, true);
  const r = reshape(s, shape) as F32;
  if (r !== s) s.dispose();
  return r;
}

const binaryNames = ['add', 'sub', 'mul', 'div'] as const;

function binaryRaw(op: BinaryOp, a: F32, b: F32): F32 {
  const name = binaryNames[op];
  requireDType(name, a, 'f32');
  requireDType(name, b, 'f32');
  const shape = broadcastShapes(name, a.shape, b.shape);
  const out = empty(shape);
  backend().binary(op, a.data, broadcastStrides(a, shape), b.data, broadcastStrides(b, shape), out.data, shape);
  return out;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): F32 {
  const fa = a as F32;
  const fb = b as F32;
  const out = binaryRaw(op, fa, fb);
  record(out, binaryNames[op], [a, b], (gy) => {
    let ga: F32 | null = null;
    let gb: F32 | null = null;
    switch (op) {
      case BinaryOp.Add:
        ga = needsGrad(a) ? gy : null;
        gb = needsGrad(b) ? gy : null;
        break;
      case BinaryOp.Sub:
        ga = needsGrad(a) ? gy : null;
        gb = needsGrad(b) ? scale(gy, -1) : null;
        break;
      case BinaryOp.Mul:
        ga = needsGrad(a) ? binaryRaw(BinaryOp.Mul, gy, fb) : null;
        gb = needsGrad(b) ? binaryRaw(BinaryOp.Mul, gy, fa) : null;
        break;
      case BinaryOp.Div: {
        // d(a/b)/da = 1/b, d(a/b)/db = −(a/b)/b
        ga = needsGrad(a) ? binaryRaw(BinaryOp.Div, gy, fb) : null;
        if (needsGrad(b)) {
          const t = binaryRaw(BinaryOp.Mul, gy, out);
          gb = binaryRaw(BinaryOp.Div, t, fb);
          t.dispose();
          backend().affine(gb.data, gb.data, gb.size, -1, 0);
        }
        break;
      }
    }
    const ra = ga && sumTo(ga, a.shape);
    const rb = gb && sumTo(gb, b.shape);
    if (ga && ra !== ga && ga !== gy) ga.dispose();
    if (gb && rb !== gb && gb !== gy) gb.dispose();
    return [ra, rb];
  });
  return out;
}

/** `a + b` with broadcasting; a number adds a constant. */
export function add(a: Tensor, b: Tensor | number): F32 {
  return typeof b === 'number' ? affine(a, 1, b) : binary(BinaryOp.Add, a, b);
}

/** `a − b` with broadcasting. */
export function sub(a: Tensor, b: Tensor | number): F32 {
  return typeof b === 'number' ? affine(a, 1, -b) : binary(BinaryOp.Sub, a, b);
}

/** `a · b` with broadcasting; a number scales. */
export function mul(a: Tensor, b: Tensor | number): F32 {
  return typeof b === 'number' ? affine(a, b, 0) : binary(BinaryOp.Mul, a, b);
}

/** `a / b` with broadcasting. */
export function div(a: Tensor, b: Tensor | number): F32 {
  return typeof b === 'number' ? affine(a, 1 / b, 0) : binary(BinaryOp.Div, a, b);
}

/** `alpha · x + beta`. */
export function affine(x: Tensor, alpha: number, beta: number): F32 {
  requireDType('affine', x, 'f32');
  const c = contiguous(x) as F32;
  const out = empty(c.shape);
  backend().affine(c.data, out.data, c.size, alpha, beta);
  if (c !== x) c.dispose();
  record(out, 'affine', [x], (gy) => [scale(gy, alpha)]);
  return out;
}

/** `alpha · x`. */
export function scale(x: Tensor, alpha: number): F32 {
  return affine(x, alpha, 0);
}

export function neg(x: Tensor): F32 {
  return affine(x, -1, 0);
}

function unary(op: UnaryOp, name: string, x: Tensor): F32 {
  requireDType(name, x, 'f32');
  const c = contiguous(x) as F32;
  const out = empty(c.shape);
  backend().unary(op, c.data, out.data, c.size);
  record(out, name, [x], (gy) => {
    const g = contiguous(gy) as F32;
    const gx = empty(c.shape);
    backend().unaryBackward(op, c.data, out.data, g.data, gx.data, c.size);
    if (g !== gy) g.dispose();
    return [gx];
  });
  return out;
}

export const exp = (x: Tensor): F32 => unary(UnaryOp.Exp, 'exp', x);
export const log = (x: Tensor): F32 => unary(UnaryOp.Log, 'log', x);
export const silu = (x: Tensor): F32 => unary(UnaryOp.Silu, 'silu', x);
/** GELU; `approximate: 'tanh'` is GPT-2's `gelu_new`, `'none'` the exact erf form (BERT). */
export const gelu = (x: Tensor, approximate: 'tanh' | 'none' = 'none'): F32 =>
  unary(approximate === 'tanh' ? UnaryOp.GeluTanh : UnaryOp.GeluErf, `gelu(${approximate})`, x);
export const tanh = (x: Tensor): F32 => unary(UnaryOp.Tanh, 'tanh', x);
export const relu = (x: Tensor): F32 => unary(UnaryOp.Relu, 'relu', x);
export const sigmoid = (x: Tensor): F32 => unary(UnaryOp.Sigmoid, 'sigmoid', x);
export const sqrt = (x: Tensor): F32 => unary(UnaryOp.Sqrt, 'sqrt', x);
export const square = (x: Tensor): F32 => unary(UnaryOp.Square, 'square', x);

/** SwiGLU as one fused kernel: `silu(gate) · up` (the Llama MLP's activation). */
export function swiglu(gate: Tensor, up: Tensor): F32 {
  requireDType('swiglu', gate, 'f32');
  requireDType('swiglu', up, 'f32');
  if (gate.shape.join() !== up.shape.join())
    throw new Error(`swiglu: gate ${gate.describe()} and up ${up.describe()} must have the same shape`);
  const g = contiguous(gate) as F32;
  const u = contiguous(up) as F32;
  const out = empty(g.shape);
  backend().swiglu(g.data, u.data, out.data, g.size);
  record(out, 'swiglu', [gate, up], (gy) => {
    const c = contiguous(gy) as F32;
    const gg = empty(g.shape);
    const gu = empty(g.shape);
    backend().swigluBackward(g.data, u.data, c.data, gg.data, gu.data, g.size);
    if (c !== gy) c.dispose();
    return [gg, gu];
  });
  return out;
}

/** `mask ? a : b` element-wise with broadcasting; `mask` is a u8 tensor. Numbers stand for constants. */
export function where(mask: Tensor, a: Tensor | number, b: Tensor | number): F32 {
  requireDType('where', mask, 'u8');
  const ta = (typeof a === 'number' ? full([], a) : a) as F32;
  const tb = (typeof b === 'number' ? full([], b) : b) as F32;
  requireDType('where', ta, 'f32');
  requireDType('where', tb, 'f32');
  const shape = broadcastShapes('where', broadcastShapes('where', mask.shape, ta.shape), tb.shape);
  const out = empty(shape);
  backend().where(
    mask.data as Uint8Array,
    broadcastStrides(mask, shape),
    ta.data,
    broadcastStrides(ta, shape),
    tb.data,
    broadcastStrides(tb, shape),
    out.data,
    shape,
  );
  record(out, 'where', [ta, tb], (gy) => {
    const zero = full([], 0) as F32;
    const pick = (t: F32, first: boolean): F32 | null => {
      if (!needsGrad(t)) return null;
      const g = where(mask, first ? gy : zero, first ? zero : gy);
      const r = sumTo(g, t.shape);
      if (r !== g) g.dispose();
      return r;
    };
    const r = [pick(ta, true), pick(tb, false)];
    zero.dispose();
    return r;
  });
  if (ta !== a) ta.dispose();
  if (tb !== b) tb.dispose();
  return out;
}

/** `x` with `value` where `mask` (u8, broadcastable) is non-zero. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): F32 {
  return where(mask, value, x);
}

/**
 * Inverted dropout: zeroes each element with probability `p` and scales the rest by 1/(1−p). Identity when `p` is
 * 0 or when grad mode is off (evaluation). The mask comes from a counter-based hash of a seed drawn from `gen`,
 * so it is reproducible and identical on every backend.
 */
export function dropout(x: Tensor, p: number, gen: Generator = globalGenerator, training = isGradEnabled()): F32 {
  requireDType('dropout', x, 'f32');
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (p === 0 || !training) return x as F32;
  const c = contiguous(x) as F32;
  const out = empty(c.shape);
  const mask = empty(c.shape, 'u8');
  backend().dropout(c.data, out.data, mask.data, c.size, p, gen.nextU32());
  if (c !== x) c.dispose();
  record(out, 'dropout', [x], (gy) => {
    const zero = full([], 0) as F32;
    const g = where(mask, scale(gy, 1 / (1 - p)), zero);
    zero.dispose();
    return [g];
  });
  return out;
}
