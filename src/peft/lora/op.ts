/**
 * The fused LoRA linear op, forward and backward side by side:
 *
 *   y = x·Wᵀ + b + Σ_k s_k · drop_k(x)·A_kᵀ·B_kᵀ        A_k [r, in], B_k [out, r], W [out, in]
 *
 * The base product runs through the engine's `linear`. Each adapter then computes the small t = drop(x)·Aᵀ [N, r]
 * and adds s·t·Bᵀ straight into the base output with one GEMM (alpha = s, beta = 1), so no full-size [N, out]
 * temporary exists for the LoRA path.
 *
 * Compute dtype: the adapter GEMMs run in the base product's dtype. With a bf16 base (or bf16 x) that is bf16 ×
 * bf16 → f32, as PyTorch's CPU autocast runs the adapter's `nn.Linear`s: the f32 adapter weights are rounded to bf16
 * for the product (they stay f32 as parameters), x's bf16 copy is the one the base GEMM reads (cast once, cached on
 * the activation), and the backward casts the output gradient once for the base and every adapter. Half the bytes
 * of the f32 path and oneDNN's bf16 dot products: these GEMMs are memory-bound (one dimension is r).
 *
 * Backward, with g = ∂L/∂y [N, out], u_k = g·B_k [N, r]:
 *   gx  = g·W + Σ_k s_k · (u_k·A_k) ⊙ dropmask_k       (the adapter terms accumulate into gx, beta = 1)
 *   gA_k = s_k · u_kᵀ·drop_k(x)      gB_k = s_k · gᵀ·t_k      gb = Σ_rows g      gW = gᵀ·x (only if W needs grad)
 */
import {
  backend,
  castTo,
  contiguousCopy,
  empty,
  globalGenerator,
  linear,
  matmul,
  noGrad,
  record,
  reshape,
  sum,
  transpose,
  where,
  full,
  type Generator,
  type Tensor,
} from '../../engine/index.js';
import { GemmDType } from '../../engine/backend/kernels.js';
import { needsGrad } from '../../engine/autograd.js';
import { inComputeType, type Compute } from '../../engine/ops/compute-type.js';

type F32 = Tensor<'f32'>;

/** One adapter's factors as the op consumes them. */
export interface LoraFactors {
  /** lora_A weight [r, in], f32. */
  a: Tensor;
  /** lora_B weight [out, r], f32. */
  b: Tensor;
  /** Scaling s (α/r, or α/√r with rsLoRA). */
  scale: number;
  /** Dropout probability applied to x on this adapter's path (0 = none; pass 0 in evaluation). */
  dropout: number;
}

/** `x` as a contiguous [rows, cols] tensor in dtype `dt`: a view when possible, else a copy (`owned`). */
function rowsIn(x: Tensor, dt: Compute, rows: number, cols: number): { t: Tensor; owned: boolean } {
  const c = inComputeType(x, dt);
  let t = c.t;
  let owned = c.temp;
  if (!t.isContiguous()) {
    const copy = contiguousCopy(t);
    if (owned) t.dispose();
    t = copy;
    owned = true;
  }
  const r = reshape(t, [rows, cols]);
  if (r !== t && owned) t.dispose();
  return { t: r, owned: owned || r !== t };
}

function factorF32(op: string, t: Tensor, shape: readonly [number, number], what: string): F32 {
  if (t.dtype !== 'f32') throw new Error(`${op}: ${what} must be f32, got ${t.describe()}`);
  if (t.rank !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1])
    throw new Error(`${op}: ${what} must have shape [${shape.join(', ')}], got ${t.describe()}`);
  return (t.isContiguous() ? t : contiguousCopy(t)) as F32;
}

/** `t` in `dt` (the same tensor when it already is). */
function cast(t: Tensor, dt: Compute): Tensor {
  return t.dtype === dt ? t : castTo(t, dt);
}

/** C[M,N] = alpha·op(A)·op(B) + beta·C, single batch; A and B contiguous in dtype `dt`, C f32. */
function gemm(dt: Compute, a: Tensor, b: Tensor, c: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number): void {
  const ab = a.data as Float32Array | Uint16Array;
  const bb = b.data as Float32Array | Uint16Array;
  backend().gemm(dt === 'bf16' ? GemmDType.BF16 : GemmDType.F32, ab, bb, c.data, 1, M, N, K, transA, transB, 0, 0, 0, alpha, beta);
}

/**
 * `x·Wᵀ + bias + Σ s·drop(x)·Aᵀ·Bᵀ` over the adapters given, as one differentiable op.
 * @param x [..., in] f32 (or bf16) activations.
 * @param w the base weight as [out, in] (a transposed view for Conv1D layout is fine), f32 or bf16.
 * @param bias [out] f32 or null.
 * @param adapters the active adapters' factors (may be empty: then this is `linear`).
 * @param gen draws the dropout seeds.
 */
export function loraLinear(x: Tensor, w: Tensor, bias: Tensor | null, adapters: readonly LoraFactors[], gen: Generator = globalGenerator): F32 {
  const op = 'loraLinear';
  if (w.rank !== 2) throw new Error(`${op}: weight must be [out, in], got ${w.describe()}`);
  const [outF, inF] = w.shape as [number, number];
  const rows = x.size / inF;
  // The base product's compute dtype (as `linear` picks it); the adapters' GEMMs run in it too.
  const dt: Compute = x.dtype === 'bf16' || w.dtype === 'bf16' ? 'bf16' : 'f32';
  const factors = adapters.map((ad, k) => {
    const r = ad.a.shape[0]!;
    if (!(ad.dropout >= 0 && ad.dropout < 1)) throw new Error(`${op}: adapter ${k} dropout must be in [0, 1), got ${ad.dropout}`);
    const a32 = factorF32(op, ad.a, [r, inF], `adapter ${k} A`);
    const b32 = factorF32(op, ad.b, [outF, r], `adapter ${k} B`);
    return { ...ad, r, ac: cast(a32, dt), bc: cast(b32, dt) };
  });
  // x in the compute dtype, kept for the backward (tensors are freed by the caller's tidy scope); the base GEMM
  // reads the same copy.
  const xr = x.dtype === 'f32' || x.dtype === 'bf16' ? rowsIn(x, dt, rows, inF) : { t: x, owned: false };
  const x2 = xr.t;
  const xin = x2 === x ? x : reshape(x2, x.shape);
  const y = noGrad(() => linear(xin, w, bias)); // validates x, w, bias
  if (xin !== x && xin !== x2) xin.dispose();
  if (factors.length === 0 && !needsGrad(x) && !needsGrad(w) && !needsGrad(bias)) {
    if (xr.owned) x2.dispose();
    return y;
  }
  const y2 = reshape(y, [rows, outF]) as F32; // y is fresh and contiguous: a view
  const saved = factors.map((f) => {
    let xd = x2;
    let mask: Tensor<'u8'> | null = null;
    if (f.dropout > 0) {
      const x32 = rowsIn(x, 'f32', rows, inF).t as F32;
      const d32 = empty([rows, inF]);
      mask = empty([rows, inF], 'u8');
      backend().dropout(x32.data, d32.data, mask.data, x32.size, f.dropout, gen.nextU32());
      xd = cast(d32, dt);
    }
    const t32 = empty([rows, f.r]);
    gemm(dt, xd, f.ac, t32, rows, f.r, inF, false, true, 1, 0); // t = drop(x)·Aᵀ
    const t = cast(t32, dt);
    gemm(dt, t, f.bc, y2, rows, outF, f.r, false, true, f.scale, 1); // y += s·t·Bᵀ, in place
    return { xd, mask, t };
  });
  if (y2 !== y) y2.dispose();

  const inputs = [x, w, bias, ...adapters.map((a) => a.a), ...adapters.map((a) => a.b)];
  record(y, op, inputs, (gy) => {
    const g = rowsIn(gy, 'f32', rows, outF);
    const g2 = g.t as F32;
    // One cast of the output gradient serves the base products and every adapter.
    const gc = cast(g2, dt);
    let gx: F32 | null = null;
    if (needsGrad(x)) gx = reshape(matmul(gc, w), [rows, inF]) as F32; // g·W
    const gAs: (F32 | null)[] = [];
    const gBs: (F32 | null)[] = [];
    factors.forEach((f, k) => {
      const { xd, mask, t } = saved[k]!;
      const wantA = needsGrad(f.a);
      if (gx || wantA) {
        const u32 = empty([rows, f.r]);
        gemm(dt, gc, f.bc, u32, rows, f.r, outF, false, false, 1, 0); // u = g·B
        const u = cast(u32, dt);
        if (gx && mask) {
          // The dropout mask sits between x and the adapter: (s·u·A) ⊙ mask / (1 − p), then added into gx.
          const v = empty([rows, inF]);
          gemm(dt, u, f.ac, v, rows, inF, f.r, false, false, f.scale / (1 - f.dropout), 0);
          const zero = full([], 0);
          const masked = where(mask, v, zero);
          backend().axpy(masked.data, gx.data, gx.size, 1);
          for (const tmp of [v, zero, masked]) tmp.dispose();
        } else if (gx) gemm(dt, u, f.ac, gx, rows, inF, f.r, false, false, f.scale, 1); // gx += s·u·A
        let gA: F32 | null = null;
        if (wantA) {
          gA = empty([f.r, inF]);
          gemm(dt, u, xd, gA, f.r, inF, rows, true, false, f.scale, 0); // gA = s·uᵀ·drop(x)
        }
        gAs.push(gA);
        if (u !== u32) u.dispose();
        u32.dispose();
      } else gAs.push(null);
      let gB: F32 | null = null;
      if (needsGrad(f.b)) {
        gB = empty([outF, f.r]);
        gemm(dt, gc, t, gB, outF, f.r, rows, true, false, f.scale, 0); // gB = s·gᵀ·t
      }
      gBs.push(gB);
    });
    const gw = needsGrad(w) ? matmul(transpose(gc), x2) : null;
    const gb = bias && needsGrad(bias) ? sum(g2, 0) : null;
    if (gc !== g2) gc.dispose();
    if (g.owned) g2.dispose();
    const gxOut = gx ? (reshape(gx, x.shape) as F32) : null;
    if (gx && gxOut !== gx) gx.dispose();
    return [gxOut, gw, gb, ...gAs, ...gBs];
  });
  return y;
}
