/**
 * LoRA-SB (Ponkshe et al. 2024, "Initialization using Update Approximation is a Silver Bullet for Extremely
 * Efficient Low-Rank Fine-Tuning"): the LoRA-XS structure y = W·x + s·B·R·A·x with B [out, r] and A [r, in] frozen
 * and only the r×r core R trainable. Init (§4, Thm. 3–4): approximate the first full fine-tuning update
 * ΔW ≈ −lr·sign(G) (or −lr·G) from the gradient G = ∂L/∂W, take its truncated SVD U_r·S_r·V_rᵀ, and set B = U_r,
 * R = S_r, A = V_rᵀ: at init the adapter applies the best rank-r approximation of that first update, and every later
 * update of R stays inside the same subspaces. The base weight is not changed.
 *
 * Built on {@link LoraLinear}: the fused LoRA op runs with A' = R·A (a differentiable [r, r]·[r, in] product,
 * r²·in flops), so R's gradient is ∂L/∂A'·Aᵀ.
 */
import { fromStorage, globalGenerator, keep, matmul, noGrad, svd, tidy, type Tensor } from '../../engine/index.js';
import { Linear } from '../../nn/index.js';
import { ModuleDict } from '../tuner.js';
import { LoraLinear, type LoraAdapterSpec } from '../lora/layer.js';
import { cols32, qr, transpose32 } from '../common/linalg.js';
import { randomizedSvd } from '../common/rsvd.js';
import type { LoraSbConfig } from './config.js';

type F32 = Tensor<'f32'>;

/** Per base layer: the approximated first update [out, in], set by `preprocessLoraSb` and consumed by the init. */
export const LORASB_UPDATES = new WeakMap<Linear, Float32Array>();

/** Spec of a LoRA-SB adapter: LoRA's (alpha = r, so s = 1) plus how it is initialised. */
export interface LoraSbAdapterSpec extends LoraAdapterSpec {
  sbInit: LoraSbConfig['init_lora_weights'];
}

export class LoraSbLinear extends LoraLinear {
  private core = this.addModule('lora_latent_mapping', new ModuleDict<Linear>());

  /** The trainable core R [r, r] of adapter `name`. */
  coreOf(name: string): F32 | undefined {
    return this.core.get(name)?.weight as F32 | undefined;
  }

  protected override createFactors(name: string, spec: LoraAdapterSpec): void {
    super.createFactors(name, { ...spec, init: true });
    const { a, b } = super.factors(name);
    const { inFeatures: inF, outFeatures: out } = this.base;
    const r = spec.r;
    const update = (spec as LoraSbAdapterSpec).sbInit === 'lora_sb' ? LORASB_UPDATES.get(this.base) : undefined;
    const core = new Float32Array(r * r);
    if (update) {
      LORASB_UPDATES.delete(this.base);
      // Exact SVD up to a thousand or so on the short side; the randomized one (Halko) beyond.
      const f = Math.min(out, inF) <= 1024 ? svd(update, out, inF) : randomizedSvd(update, out, inF, r, { oversample: 2 * r + 8, niter: 4 });
      b.data.set(cols32(f.u, out, f.k, 0, r));
      a.data.set(f.vt.subarray(0, r * inF));
      for (let i = 0; i < r; i++) core[i * r + i] = f.s[i]!;
    } else {
      // No update to start from: random orthonormal bases and R = 0 (the adapter starts as a no-op).
      b.data.set(qr(gaussian(out * r), out, r).q);
      a.data.set(transpose32(qr(gaussian(inF * r), inF, r).q, inF, r));
    }
    this.core.set(name, new Linear(keep(fromStorage(core, [r, r], 'f32'))));
  }

  protected override removeFactors(name: string): void {
    super.removeFactors(name);
    this.core = this.addModule('lora_latent_mapping', this.core.without(name));
  }

  /** A' = R·A (recorded for autograd when R requires grad) and B; plain LoRA factors for a LoRA adapter held here. */
  protected override factors(name: string): { a: F32; b: F32 } {
    const { a, b } = super.factors(name);
    const R = this.coreOf(name);
    return R ? { a: matmul(R, a), b } : { a, b };
  }

  override adapterTensors(name: string): [string, Tensor][] {
    const { a, b } = super.factors(name);
    const R = this.coreOf(name);
    return [['lora_A.weight', a], ['lora_B.weight', b], ...(R ? [['lora_latent_mapping.weight', R] as [string, Tensor]] : [])];
  }

  /** Only R is trained: A and B stay frozen. */
  override setActiveAdapters(names: readonly string[], inferenceMode: boolean): void {
    super.setActiveAdapters(names, inferenceMode);
    for (const n of this.adapterNames()) {
      if (!this.coreOf(n)) continue;
      const { a, b } = super.factors(n);
      a.requiresGrad = false;
      b.requiresGrad = false;
    }
  }

  override addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    tidy(() => noGrad(() => super.addDeltaTo(weight, name, sign))); // frees the R·A temporary
  }
}

function gaussian(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => globalGenerator.normal());
}
