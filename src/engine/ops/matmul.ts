/**
 * Matrix products through the backend GEMM (OpenBLAS sgemm for f32, oneDNN bf16×bf16→f32 for bf16).
 * Transposed operands are passed to the GEMM as flags, never copied; batch dimensions broadcast.
 * If either operand is bf16 the product runs in bf16 with fp32 accumulation — forward and backward — the way
 * PyTorch's CPU autocast does; gradients are f32.
 */
import { backend } from '../backend/index.js';
import { GemmDType } from '../backend/kernels.js';
import { needsGrad, record } from '../autograd.js';
import { castTo, contiguousCopy, empty, numel, view, type Tensor } from '../tensor.js';
import { broadcastShapes, broadcastStrides } from './broadcast.js';
import { inComputeType, type Compute } from './compute-type.js';
import { requireDType } from './check.js';
import { sumTo } from './elementwise.js';
import { expand, reshape, transpose } from './shape.js';

type F32 = Tensor<'f32'>;

/** A GEMM operand: storage to read, whether it is stored transposed, and its stride between batch entries. */
interface Operand {
  t: Tensor;
  trans: boolean;
  batchStride: number;
  temp: boolean;
}

function operand(x: Tensor, batch: readonly number[], dt: Compute): Operand {
  let { t, temp } = inComputeType(x, dt);
  const r = t.shape[t.rank - 2]!;
  const c = t.shape[t.rank - 1]!;
  const sr = t.strides[t.rank - 2]!;
  const sc = t.strides[t.rank - 1]!;
  let trans: boolean;
  if ((sc === 1 || c === 1) && (sr === c || r === 1)) trans = false;
  else if ((sr === 1 || r === 1) && (sc === r || c === 1)) trans = true;
  else {
    const copy = contiguousCopy(t);
    if (temp) t.dispose();
    t = copy;
    temp = true;
    trans = false;
  }
  // The batch entries must sit at a uniform stride (0 = one matrix shared by all); otherwise materialise them.
  const probe = view(t, [...t.shape.slice(0, -2), 1, 1], t.strides, t.offset);
  const strides = broadcastStrides(probe, [...batch, 1, 1]).slice(0, batch.length);
  probe.dispose();
  const live = batch.map((d, i) => (d > 1 ? i : -1)).filter((i) => i >= 0);
  let batchStride = 0;
  if (live.length) {
    const lastLive = live[live.length - 1]!;
    batchStride = strides[lastLive]! / numel(batch.slice(lastLive + 1));
    const uniform = live.every((i) => strides[i] === batchStride * numel(batch.slice(i + 1)));
    if (!uniform || !Number.isInteger(batchStride)) {
      const e = expand(t, [...batch, r, c]);
      const copy = contiguousCopy(e);
      e.dispose();
      if (temp) t.dispose();
      return { t: copy, trans: false, batchStride: r * c, temp: true };
    }
  }
  return { t, trans, batchStride, temp };
}

/** `op(a) @ op(b)` into a new f32 tensor, without autograd. */
function product(a: Tensor, b: Tensor, dt: Compute): F32 {
  const M = a.shape[a.rank - 2]!;
  const K = a.shape[a.rank - 1]!;
  const N = b.shape[b.rank - 1]!;
  if (b.shape[b.rank - 2] !== K)
    throw new Error(`matmul: inner dimensions differ: ${a.describe()} @ ${b.describe()} (${K} vs ${b.shape[b.rank - 2]})`);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = empty([...batch, M, N]);
  const A = operand(a, batch, dt);
  const B = operand(b, batch, dt);
  backend().gemm(
    dt === 'bf16' ? GemmDType.BF16 : GemmDType.F32,
    A.t.data as Float32Array | Uint16Array,
    B.t.data as Float32Array | Uint16Array,
    out.data,
    numel(batch),
    M,
    N,
    K,
    A.trans,
    B.trans,
    A.batchStride,
    B.batchStride,
    M * N,
    1,
    0,
  );
  if (A.temp) A.t.dispose();
  if (B.temp) B.t.dispose();
  return out;
}

function computeType(op: string, a: Tensor, b: Tensor): Compute {
  requireDType(op, a, 'f32', 'bf16');
  requireDType(op, b, 'f32', 'bf16');
  if (a.rank < 2 || b.rank < 2) throw new Error(`${op}: operands must have rank ≥ 2, got ${a.describe()} and ${b.describe()}`);
  return a.dtype === 'bf16' || b.dtype === 'bf16' ? 'bf16' : 'f32';
}

/** Batched matrix product `a @ b` over the last two dimensions, broadcasting the batch dimensions. */
export function matmul(a: Tensor, b: Tensor): F32 {
  const dt = computeType('matmul', a, b);
  const out = product(a, b, dt);
  record(out, 'matmul', [a, b], (gy) => {
    const ga = needsGrad(a) ? reduceTo(product(gy, transpose(b), dt), a.shape) : null;
    const gb = needsGrad(b) ? reduceTo(product(transpose(a), gy, dt), b.shape) : null;
    return [ga, gb];
  });
  return out;
}

function reduceTo(g: F32, shape: readonly number[]): F32 {
  const r = sumTo(g, shape);
  if (r !== g) g.dispose();
  return r;
}

/**
 * `x @ wᵀ + bias` with x [..., in], w [out, in] (PyTorch `nn.Linear` layout), bias [out].
 * The leading dimensions of x are folded into one GEMM; the bias is loaded into the output first and the GEMM
 * accumulates onto it, so no separate pass adds it.
 */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): F32 {
  const dt = computeType('linear', x, w);
  if (w.rank !== 2) throw new Error(`linear: weight must be [out, in], got ${w.describe()}`);
  const [outF, inF] = w.shape as [number, number];
  if (x.shape[x.rank - 1] !== inF) throw new Error(`linear: input ${x.describe()} does not match weight ${w.describe()}`);
  if (bias) {
    requireDType('linear', bias, 'f32');
    if (bias.rank !== 1 || bias.shape[0] !== outF) throw new Error(`linear: bias ${bias.describe()} does not match weight ${w.describe()}`);
  }
  const rows = x.size / inF;
  // The input as [rows, in] in the compute dtype; kept for the weight gradient (one cast serves both GEMMs).
  const xin = inComputeType(x, dt);
  const x2 = reshape(xin.t, [rows, inF]);
  if (xin.temp && x2 !== xin.t) xin.t.dispose();
  const wt = transpose(w);
  const out = bias ? expandRows(bias as F32, rows) : empty([rows, outF]);
  const X = operand(x2, [], dt);
  const W = operand(wt, [], dt);
  backend().gemm(
    dt === 'bf16' ? GemmDType.BF16 : GemmDType.F32,
    X.t.data as Float32Array | Uint16Array,
    W.t.data as Float32Array | Uint16Array,
    out.data,
    1,
    rows,
    outF,
    inF,
    X.trans,
    W.trans,
    0,
    0,
    0,
    1,
    bias ? 1 : 0,
  );
  if (X.temp) X.t.dispose();
  if (W.temp) W.t.dispose();
  const y = reshape(out, [...x.shape.slice(0, -1), outF]);
  if (y !== out) out.dispose();
  record(y, 'linear', [x, w, bias], (gy) => {
    const g2 = reshape(gy, [rows, outF]);
    // Both products read the output gradient: cast it once.
    const g2c = dt === 'bf16' && (needsGrad(x) || needsGrad(w)) ? castTo(g2, 'bf16') : g2;
    const gx = needsGrad(x) ? reshapeOwned(product(g2c, w, dt), x.shape) : null;
    const gw = needsGrad(w) ? product(transpose(g2c), x2, dt) : null;
    const gb = bias && needsGrad(bias) ? sumTo(g2 as F32, [1, outF]) : null;
    const gbv = gb ? reshapeOwned(gb, [outF]) : null;
    if (g2c !== g2) g2c.dispose();
    if (g2 !== gy) g2.dispose();
    return [gx, gw, gbv];
  });
  return y;
}

function reshapeOwned(t: F32, shape: readonly number[]): F32 {
  const r = reshape(t, shape) as F32;
  if (r !== t) t.dispose();
  return r;
}

/** A [rows, n] tensor whose every row is `v`. */
function expandRows(v: F32, rows: number): F32 {
  const out = empty([rows, v.shape[0]!]);
  backend().copyStrided(v.data, [0, v.strides[0]!], out.data, [...out.strides], [rows, v.shape[0]!]);
  return out;
}
