/**
 * DoRA (weight-decomposed low-rank adaptation; PEFT `LORA` with `use_dora`): the adapted weight is split into a
 * per-output-row magnitude m [out] (`lora_magnitude_vector`) and a direction,
 *   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row,
 * with m initialised to ‖W + s·B·A‖_row (= ‖W‖_row, the paper's column norms, since B = 0), so the output equals the
 * base's at init. Memory-efficient form (paper §4.3, as PEFT): the norm is treated as a constant — computed without
 * a gradient graph — so backward never differentiates through ‖·‖, and
 *   y = (m / ‖W + s·B·A‖) ⊙ (x·Wᵀ + s·drop(x)·Aᵀ·Bᵀ) + bias
 * is one fused LoRA op scaled per output column. With several active DoRA adapters each adds
 * (m_k/n_k) ⊙ (x·Wᵀ + s_k·x·A_kᵀ·B_kᵀ) − x·Wᵀ. With dropout > 0 the dropped input feeds the low-rank term only
 * (PEFT feeds it to the base term of the correction too).
 */
import { add, castTo, contiguousCopy, div, keep, matmul, mul, noGrad, reshape, scale, sqrt, square, sub, sum, tidy, type Tensor } from '../../engine/index.js';
import { loraLinear } from '../lora/op.js';
import { Module } from '../../nn/index.js';
import { addIntoWeight } from '../common/linear-adapter.js';
import { LoraLinear, type LoraAdapterSpec } from '../lora/layer.js';
import { ModuleDict } from '../tuner.js';

type F32 = Tensor<'f32'>;

/** Holds one magnitude vector as `weight` (PEFT's `lora_magnitude_vector.<adapter>.weight`). */
class Magnitude extends Module {
  constructor(weight: Tensor) {
    super();
    this.addParameter('weight', weight);
  }
}

/** `weight` [out, in] (any layout view, f32 or bf16) as a fresh contiguous f32 tensor. */
function f32Copy(w: Tensor): F32 {
  return (w.dtype === 'f32' ? contiguousCopy(w) : castTo(contiguousCopy(w), 'f32')) as F32;
}

/** ‖W + s·B·A‖ per output row, W [out, in] f32: a constant (no gradient graph). */
export function doraWeightNorm(w: F32, a: F32, b: F32, s: number): F32 {
  return noGrad(() => tidy(() => keep(sqrt(sum(square(add(w, scale(matmul(b, a), s))), 1)))));
}

export class DoraLinear extends LoraLinear {
  private magnitudes = this.addModule('lora_magnitude_vector', new ModuleDict<Magnitude>());
  /** The delta each merged adapter added to the base weight (subtracted exactly on unmerge). */
  private readonly mergedDeltas = new Map<string, F32>();

  /** Adapter `name`'s magnitude m [out]. */
  magnitude(name: string): F32 {
    const m = this.magnitudes.get(name);
    if (!m) throw new Error(`DoRA: no adapter '${name}'`);
    return m.param('weight') as F32;
  }

  protected override createFactors(name: string, spec: LoraAdapterSpec): void {
    super.createFactors(name, spec);
    const { a, b } = this.factors(name);
    const w = f32Copy(this.base.weightOutIn());
    const norm = doraWeightNorm(w, a, b, this.scaling.get(name)!);
    w.dispose();
    this.magnitudes.set(name, new Magnitude(norm));
  }

  protected override removeFactors(name: string): void {
    super.removeFactors(name);
    this.magnitudes = this.addModule('lora_magnitude_vector', this.magnitudes.without(name));
  }

  override adapterTensors(name: string): [string, Tensor][] {
    return [...super.adapterTensors(name), ['lora_magnitude_vector', this.magnitude(name)]];
  }

  /** DoRA's merged weight minus W, for the weight `w` [out, in] f32: (m/‖W + sBA‖ − 1)·W + (m/‖·‖)·s·B·A. */
  private mergeDelta(w: F32, name: string): F32 {
    const { a, b } = this.factors(name);
    const s = this.scaling.get(name)!;
    return noGrad(() =>
      tidy(() => {
        const adapted = add(w, scale(matmul(b, a), s));
        const norm = sqrt(sum(square(adapted), 1, true));
        return keep(sub(mul(div(reshape(this.magnitude(name), [w.shape[0]!, 1]), norm), adapted), w));
      }),
    );
  }

  override addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    const transposed = this.base.fanInFanOut;
    const isBase = weight === this.base.weight;
    if (sign === -1) {
      const d = this.mergedDeltas.get(name);
      if (!d || !isBase) throw new Error(`DoRA: adapter '${name}' can only be subtracted from the base weight it was merged into`);
      addIntoWeight(weight, d, -1, transposed, 'DoRA');
      d.dispose();
      this.mergedDeltas.delete(name);
      return;
    }
    const w = f32Copy(transposed ? weight.transpose() : weight);
    const d = this.mergeDelta(w, name);
    w.dispose();
    addIntoWeight(weight, d, 1, transposed, 'DoRA');
    if (isBase) this.mergedDeltas.set(name, d);
    else d.dispose();
  }

  override forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    const wOutIn = this.base.weightOutIn();
    const w32 = f32Copy(wOutIn);
    let y: F32 | null = null;
    for (const n of names) {
      const { a, b } = this.factors(n);
      const s = this.scaling.get(n)!;
      const ratio = div(this.magnitude(n), doraWeightNorm(w32, a, b, s)); // m / ‖W + sBA‖, gradient to m only
      const adapted = mul(loraLinear(x, wOutIn, null, [{ a, b, scale: s, dropout: this.training ? this.loraDropout.get(n)! : 0 }]), ratio);
      y = y ? add(y, adapted) : adapted;
    }
    w32.dispose();
    if (names.length > 1) y = sub(y!, scale(loraLinear(x, wOutIn, null, []), names.length - 1));
    return this.base.bias ? add(y!, this.base.bias) : y!;
  }
}
