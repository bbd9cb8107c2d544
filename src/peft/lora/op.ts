/**
 * The fused LoRA linear op, forward and backward side by side:
 *
 *   y = x·Wᵀ + b + Σ_k s_k · drop_k(x)·A_kᵀ·B_kᵀ        A_k [r, in], B_k [out, r], W [out, in]
 *
 * The base product runs through the engine's `linear` (bf16 GEMM with fp32 accumulation when W is bf16). Each
 * adapter then computes the small t = drop(x)·Aᵀ [N, r] and adds s·t·Bᵀ straight into the base output with one GEMM
 * (alpha = s, beta = 1), so no full-size [N, out] temporary exists for the LoRA path. The LoRA GEMMs run in f32 on
 * the f32 adapter weights even for a bf16 base: their cost is N·r·(in + out), small next to the base N·in·out, and a
 * bf16 variant would first have to cast x (an [N, in] copy) — see the bf16 note in the LoRA layer docs.
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

/** `x` as a contiguous f32 [rows, cols] tensor: a view when possible, else a copy (`owned`). */
function rowsF32(x: Tensor, rows: number, cols: number): { t: F32; owned: boolean } {
  if (x.dtype === 'f32' && x.isContiguous()) return { t: reshape(x as F32, [rows, cols]) as F32, owned: false };
  const c = x.dtype === 'f32' ? contiguousCopy(x as F32) : castTo(x, 'f32');
  const t = reshape(c, [rows, cols]) as F32;
  if (t !== c) c.dispose();
  return { t, owned: true };
}

function factorF32(op: string, t: Tensor, shape: readonly [number, number], what: string): F32 {
  if (t.dtype !== 'f32') throw new Error(`${op}: ${what} must be f32, got ${t.describe()}`);
  if (t.rank !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1])
    throw new Error(`${op}: ${what} must have shape [${shape.join(', ')}], got ${t.describe()}`);
  return (t.isContiguous() ? t : contiguousCopy(t)) as F32;
}

/** C[M,N] = alpha·op(A)·op(B) + beta·C in f32, single batch. */
function gemm(a: F32, b: F32, c: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number): void {
  backend().gemm(GemmDType.F32, a.data, b.data, c.data, 1, M, N, K, transA, transB, 0, 0, 0, alpha, beta);
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
  const factors = adapters.map((ad, k) => {
    const r = ad.a.shape[0]!;
    if (!(ad.dropout >= 0 && ad.dropout < 1)) throw new Error(`${op}: adapter ${k} dropout must be in [0, 1), got ${ad.dropout}`);
    return { ...ad, r, a32: factorF32(op, ad.a, [r, inF], `adapter ${k} A`), b32: factorF32(op, ad.b, [outF, r], `adapter ${k} B`) };
  });
  const y = noGrad(() => linear(x, w, bias)); // validates x, w, bias; bf16 GEMM when w is bf16
  if (factors.length === 0 && !needsGrad(x) && !needsGrad(w) && !needsGrad(bias)) return y;
  const x2 = rowsF32(x, rows, inF).t; // saved for the backward (tensors are freed by the caller's tidy scope)
  const y2 = reshape(y, [rows, outF]) as F32; // y is fresh and contiguous: a view
  const saved = factors.map((f) => {
    let xd = x2;
    let mask: Tensor<'u8'> | null = null;
    if (f.dropout > 0) {
      xd = empty([rows, inF]);
      mask = empty([rows, inF], 'u8');
      backend().dropout(x2.data, xd.data, mask.data, x2.size, f.dropout, gen.nextU32());
    }
    const t = empty([rows, f.r]);
    gemm(xd, f.a32, t, rows, f.r, inF, false, true, 1, 0); // t = drop(x)·Aᵀ
    gemm(t, f.b32, y2, rows, outF, f.r, false, true, f.scale, 1); // y += s·t·Bᵀ, in place
    return { xd, mask, t };
  });
  if (y2 !== y) y2.dispose();

  const inputs = [x, w, bias, ...adapters.map((a) => a.a), ...adapters.map((a) => a.b)];
  record(y, op, inputs, (gy) => {
    const g = rowsF32(gy, rows, outF);
    const g2 = g.t;
    let gx: F32 | null = null;
    if (needsGrad(x)) gx = reshape(matmul(g2, w), [rows, inF]) as F32; // g·W (bf16 GEMM for a bf16 W, like linear)
    const gAs: (F32 | null)[] = [];
    const gBs: (F32 | null)[] = [];
    factors.forEach((f, k) => {
      const { xd, mask, t } = saved[k]!;
      const wantA = needsGrad(f.a);
      if (gx || wantA) {
        const u = empty([rows, f.r]);
        gemm(g2, f.b32, u, rows, f.r, outF, false, false, 1, 0); // u = g·B
        if (gx && mask) {
          // The dropout mask sits between x and the adapter: (s·u·A) ⊙ mask / (1 − p), then added into gx.
          const v = empty([rows, inF]);
          gemm(u, f.a32, v, rows, inF, f.r, false, false, f.scale / (1 - f.dropout), 0);
          const zero = full([], 0);
          const masked = where(mask, v, zero);
          backend().axpy(masked.data, gx.data, gx.size, 1);
          for (const tmp of [v, zero, masked]) tmp.dispose();
        } else if (gx) gemm(u, f.a32, gx, rows, inF, f.r, false, false, f.scale, 1); // gx += s·u·A
        let gA: F32 | null = null;
        if (wantA) {
          gA = empty([f.r, inF]);
          gemm(u, xd, gA, f.r, inF, rows, true, false, f.scale, 0); // gA = s·uᵀ·drop(x)
        }
        gAs.push(gA);
        u.dispose();
      } else gAs.push(null);
      let gB: F32 | null = null;
      if (needsGrad(f.b)) {
        gB = empty([outF, f.r]);
        gemm(g2, t, gB, outF, f.r, rows, true, false, f.scale, 0); // gB = s·gᵀ·t
      }
      gBs.push(gB);
    });
    const gw = needsGrad(w) ? matmul(transpose(g2), x2) : null;
    const gb = bias && needsGrad(bias) ? sum(g2, 0) : null;
    if (g.owned) g2.dispose();
    const gxOut = gx ? (reshape(gx, x.shape) as F32) : null;
    if (gx && gxOut !== gx) gx.dispose();
    return [gxOut, gw, gb, ...gAs, ...gBs];
  });
  return y;
}
