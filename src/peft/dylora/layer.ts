/**
 * DyLoRA (dynamic search-free LoRA): one LoRA pair A [r, in], B [out, r] trained for every rank at once. Each
 * training forward samples b ∈ [min_r, r] (uniformly, from the global generator) and runs the truncated adapter
 *   y = x·Wᵀ + (α/b)·drop(x)·A[:b]ᵀ·B[:, :b]ᵀ,
 * so the leading components learn to work on their own (nested-dropout ordering). With `frozen_lower` only the
 * b-th component receives gradient that step (the paper's frozen mode: components < b enter as constants).
 * Outside training the layer uses rank {@link DyloraLinear.setRank} (default `eval_r`, else r): any prefix is a
 * valid adapter, and equals a plain LoRA with those components and scaling α/k. Keys and in-memory names are
 * LoRA's (`lora_A.<adapter>.weight`, `lora_B.<adapter>.weight`).
 */
import { concat, contiguousCopy, globalGenerator, narrow, noGrad, scale, matmul, tidy, type Tensor } from '../../engine/index.js';
import { addIntoWeight } from '../common/linear-adapter.js';
import { loraLinear } from '../lora/op.js';
import { LoraLinear, type LoraAdapterSpec } from '../lora/layer.js';

type F32 = Tensor<'f32'>;

export interface DyloraSpec extends LoraAdapterSpec {
  minR: number;
  frozenLower: boolean;
  evalR: number;
}

export class DyloraLinear extends LoraLinear {
  private readonly dyn = new Map<string, { minR: number; frozenLower: boolean; evalR: number }>();

  override addAdapter(name: string, spec: LoraAdapterSpec): void {
    const { minR, frozenLower, evalR } = spec as DyloraSpec;
    super.addAdapter(name, { ...spec, useRslora: false });
    this.dyn.set(name, { minR, frozenLower, evalR });
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.dyn.delete(name);
  }

  /** Uses the first `k` components of adapter `name` (default: every adapter here) outside training. */
  setRank(k: number, name?: string): void {
    for (const n of name ? [name] : this.adapterNames()) {
      const r = this.r.get(n);
      if (r === undefined) throw new Error(`DyLoRA: no adapter '${n}'`);
      if (!(Number.isInteger(k) && k >= 1 && k <= r)) throw new Error(`DyLoRA: rank must be in [1, ${r}], got ${k}`);
      if (this.mergedAdapters.includes(n)) throw new Error(`DyLoRA: adapter '${n}' is merged; unmerge before changing its rank`);
      this.dyn.get(n)!.evalR = k;
    }
  }

  /** The rank adapter `name` runs at outside training. */
  rank(name: string): number {
    return this.dyn.get(name)!.evalR;
  }

  /** A[:b], B[:, :b] with scaling α/b; `frozenLower`: components < b as constants. */
  private truncated(name: string, b: number, frozenLower: boolean): { a: F32; b: F32; scale: number } {
    const { a, b: bm } = this.factors(name);
    let at = narrow(a, 0, 0, b);
    let bt = narrow(bm, 1, 0, b);
    if (frozenLower && b > 1) {
      at = concat([contiguousCopy(narrow(a, 0, 0, b - 1)), narrow(a, 0, b - 1, 1)], 0) as F32;
      bt = concat([contiguousCopy(narrow(bm, 1, 0, b - 1)), narrow(bm, 1, b - 1, 1)], 1) as F32;
    }
    return { a: at, b: bt, scale: this.loraAlpha.get(name)! / b };
  }

  override addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    noGrad(() =>
      tidy(() => {
        const t = this.truncated(name, this.rank(name), false);
        addIntoWeight(weight, scale(matmul(t.b, t.a), t.scale), sign, this.base.fanInFanOut, 'DyLoRA');
      }),
    );
  }

  override forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    const factors = names.map((n) => {
      const d = this.dyn.get(n)!;
      const r = this.r.get(n)!;
      const b = this.training ? d.minR + Math.floor(globalGenerator.uniform() * (r - d.minR + 1)) : d.evalR;
      return { ...this.truncated(n, b, this.training && d.frozenLower), dropout: this.training ? this.loraDropout.get(n)! : 0 };
    });
    return loraLinear(x, this.base.weightOutIn(), this.base.bias, factors);
  }
}
