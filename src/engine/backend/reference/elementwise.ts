/** Element-wise kernels: binary ops with broadcasting strides, unary functions and their derivatives, SwiGLU, where, dropout. */
import { BinaryOp, UnaryOp, hashUniform } from '../kernels.js';
import { forEachRow } from './strided.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/**
 * erf(x) in double precision (JavaScript has no Math.erf): the Maclaurin series for |x| < 2.5 and, beyond, the
 * continued fraction erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) evaluated from its tail.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (Number.isNaN(x)) return x;
  if (ax < 2.5) {
    // erf(x) = 2/√π · Σ (−1)ⁿ x^{2n+1} / (n!(2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= (-x * x) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const silu = (x: number): number => x * sigmoid(x);
// d silu / dx = σ(x)·(1 + x·(1 − σ(x)))
const siluGrad = (x: number): number => {
  const s = sigmoid(x);
  return s * (1 + x * (1 - s));
};

const binaryFns: Record<BinaryOp, (a: number, b: number) => number> = {
  [BinaryOp.Add]: (a, b) => a + b,
  [BinaryOp.Sub]: (a, b) => a - b,
  [BinaryOp.Mul]: (a, b) => a * b,
  [BinaryOp.Div]: (a, b) => a / b,
};

/** `out[idx] = a[aStrides·idx] OP b[bStrides·idx]` over `shape` (rank ≤ 8); `out` contiguous. */
export function binary(op: BinaryOp, a: Float32Array, aStrides: number[], b: Float32Array, bStrides: number[], out: Float32Array, shape: number[]): void {
  const f = binaryFns[op];
  if (!f) throw new RangeError(`binary: unknown op ${op}`);
  let o = 0;
  forEachRow('binary', shape, [aStrides, bStrides], ([ao, bo], cols, [as, bs]) => {
    for (let i = 0; i < cols; i++) out[o++] = f(a[ao + i * as], b[bo + i * bs]);
  });
}

const unaryFns: Record<UnaryOp, (x: number) => number> = {
  [UnaryOp.Exp]: Math.exp,
  [UnaryOp.Log]: Math.log,
  [UnaryOp.Silu]: silu,
  [UnaryOp.GeluTanh]: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x))),
  [UnaryOp.GeluErf]: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  [UnaryOp.Tanh]: Math.tanh,
  [UnaryOp.Relu]: (x) => (x > 0 ? x : 0),
  [UnaryOp.Sigmoid]: sigmoid,
  [UnaryOp.Sqrt]: Math.sqrt,
  [UnaryOp.Square]: (x) => x * x,
  [UnaryOp.Neg]: (x) => -x,
};

/** f'(x) given x and y = f(x); exp, tanh, sigmoid and sqrt use y. */
const unaryGrads: Record<UnaryOp, (x: number, y: number) => number> = {
  [UnaryOp.Exp]: (_x, y) => y,
  [UnaryOp.Log]: (x) => 1 / x,
  [UnaryOp.Silu]: siluGrad,
  // d/dx ½x(1 + tanh u) = ½(1 + tanh u) + ½x(1 − tanh²u)·u',  u = √(2/π)(x + c x³),  u' = √(2/π)(1 + 3c x²)
  [UnaryOp.GeluTanh]: (x) => {
    const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
  },
  // d/dx ½x(1 + erf(x/√2)) = Φ(x) + x·φ(x)
  [UnaryOp.GeluErf]: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  [UnaryOp.Tanh]: (_x, y) => 1 - y * y,
  [UnaryOp.Relu]: (x) => (x > 0 ? 1 : 0),
  [UnaryOp.Sigmoid]: (_x, y) => y * (1 - y),
  [UnaryOp.Sqrt]: (_x, y) => 0.5 / y,
  [UnaryOp.Square]: (x) => 2 * x,
  [UnaryOp.Neg]: () => -1,
};

/** `out[i] = f(x[i])` for i < n (`out` may be `x`). */
export function unary(op: UnaryOp, x: Float32Array, out: Float32Array, n: number): void {
  const f = unaryFns[op];
  if (!f) throw new RangeError(`unary: unknown op ${op}`);
  for (let i = 0; i < n; i++) out[i] = f(x[i]);
}

/** `gx[i] = gy[i]·f'(x[i])` for i < n. */
export function unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, n: number): void {
  const df = unaryGrads[op];
  if (!df) throw new RangeError(`unaryBackward: unknown op ${op}`);
  for (let i = 0; i < n; i++) gx[i] = gy[i] * df(x[i], y[i]);
}

/** SwiGLU: `out[i] = silu(g[i])·u[i]`. */
export function swiglu(g: Float32Array, u: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = silu(g[i]) * u[i];
}

/** Backward of {@link swiglu}: `gg = gy·u·silu'(g)`, `gu = gy·silu(g)`. */
export function swigluBackward(g: Float32Array, u: Float32Array, gy: Float32Array, gg: Float32Array, gu: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = g[i];
    gg[i] = gy[i] * u[i] * siluGrad(x);
    gu[i] = gy[i] * silu(x);
  }
}

/** `out[idx] = mask[maskStrides·idx] ≠ 0 ? a[aStrides·idx] : b[bStrides·idx]` over `shape`; `out` contiguous. */
export function where(
  mask: Uint8Array,
  maskStrides: number[],
  a: Float32Array,
  aStrides: number[],
  b: Float32Array,
  bStrides: number[],
  out: Float32Array,
  shape: number[],
): void {
  let o = 0;
  forEachRow('where', shape, [maskStrides, aStrides, bStrides], ([mo, ao, bo], cols, [ms, as, bs]) => {
    for (let i = 0; i < cols; i++) out[o++] = mask[mo + i * ms] !== 0 ? a[ao + i * as] : b[bo + i * bs];
  });
}

/** Inverted dropout: keeps element i when `hashUniform(seed, i) ≥ p`, scaling it by 1/(1−p); writes the 0/1 mask. */
export function dropout(x: Float32Array, out: Float32Array, mask: Uint8Array, n: number, p: number, seed: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  const scale = 1 / (1 - p);
  for (let i = 0; i < n; i++) {
    const keep = hashUniform(seed, i) >= p;
    mask[i] = keep ? 1 : 0;
    out[i] = keep ? x[i] * scale : 0;
  }
}
