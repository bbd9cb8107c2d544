/**
 * LoLDU (low-rank adaptation via lower-diag-upper decomposition): the base weight's leading LDU factors
 * ({@link leadingLdu}) W ≈ L·diag(d)·U (L [out, r] pivoted lower, U [r, in] unit upper) are frozen, and only a diagonal z
 * [r] (`loldu_diag`, initialised to d) and a scalar σ [1] (`loldu_scale`, initialised to 1) are trained:
 *   ΔW = L·diag(σ·z − d)·U,
 * which is zero at initialisation — the base keeps the part L·diag(d)·U and the adapter re-scales it, without
 * modifying the base weight. r + 1 trainable numbers per layer. L and U are recomputed from the base weight (its
 * f32 values) when the adapter is created or loaded, so the file holds only z and σ; it therefore fits only the
 * base weights it was trained on (same checkpoint, same dtype).
 */
import { castTo, contiguousCopy, full, fromStorage, keep, mul, reshape, sub, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';
import { leadingLdu } from './ldu.js';

type F32 = Tensor<'f32'>;

export class LolduLinear extends LinearAdapterLayer<{ r: number }> {
  protected readonly method = 'LoLDU';
  private readonly factors = new Map<string, { l: F32; d: F32; u: F32 }>();

  protected create(name: string, spec: { r: number }): void {
    const { inFeatures: inF, outFeatures: outF } = this;
    if (spec.r > Math.min(inF, outF)) throw new Error(`LoLDU: r = ${spec.r} exceeds min(in, out) = ${Math.min(inF, outF)} of this layer`);
    const w = this.base.weightOutIn();
    const w32 = w.dtype === 'f32' ? contiguousCopy(w) : castTo(contiguousCopy(w), 'f32');
    const { l, d, u } = leadingLdu(w32.data as Float32Array, outF, inF, spec.r);
    w32.dispose();
    const factors = { l: keep(fromStorage(l, [outF, spec.r], 'f32')), d: keep(fromStorage(d, [spec.r], 'f32')), u: keep(fromStorage(u, [spec.r, inF], 'f32')) };
    this.factors.set(name, factors);
    this.setAdapterTensors(name, [
      ['loldu_diag', contiguousCopy(factors.d)],
      ['loldu_scale', full([1], 1)],
    ]);
  }

  protected override forget(name: string): void {
    for (const t of Object.values(this.factors.get(name)!)) t.dispose();
    this.factors.delete(name);
  }

  /** Adapter `name`'s frozen factors: L [out, r], the pivots d [r], U [r, in]. */
  ldu(name: string): { l: F32; d: F32; u: F32 } {
    const f = this.factors.get(name);
    if (!f) throw new Error(`LoLDU: no adapter '${name}'`);
    return f;
  }

  protected contribution(name: string): Contribution {
    const { l, d, u } = this.ldu(name);
    const diag = sub(mul(this.tensor(name, 'loldu_diag'), this.tensor(name, 'loldu_scale')), d);
    return { kind: 'factors', factors: { a: mul(reshape(diag, [d.size, 1]), u), b: l, scale: 1, dropout: 0 } };
  }
}
