/**
 * LayerNorm tuning (Zhao et al. 2023, "Tuning LayerNorm in Attention"): only the normalisation layers' affine
 * parameters train. As PEFT's `LNTuningLayer`, each adapter is a trainable copy of the norm's parameters
 * (`ln_tuning_layers.<adapter>.weight`, `.bias` for LayerNorm); the forward runs the base norm with the active
 * adapter's copy in place of its own. Merging swaps the copy into the base (exact); unmerging swaps it back.
 */
import { castTo, contiguousCopy, noGrad, type Tensor } from '../../engine/index.js';
import type { Module } from '../../nn/index.js';
import { AdapterLayer } from '../common/adapter-layer.js';
import { copyValues, withParams } from '../common/swap.js';

export class LnTuningLayer extends AdapterLayer {
  protected readonly method = 'LN_TUNING';
  /** The base parameters' values saved while an adapter is merged. */
  private saved: [string, Tensor][] = [];

  constructor(readonly base: Module & { forward(x: Tensor): Tensor<'f32'> }) {
    super(base);
  }

  /** The base norm's own parameters (weight, and bias when it has one). */
  private baseParams(): [string, Tensor][] {
    return this.base.namedParameters().filter(([k]) => !k.includes('.'));
  }

  /** The base weight (models may read `norm.weight`). */
  get weight(): Tensor {
    return this.base.param('weight')!;
  }

  /** Adds adapter `name`: f32 copies of the norm's parameters. */
  addAdapter(name: string): void {
    this.setAdapterTensors(name, this.baseParams().map(([k, p]) => [`ln_tuning_layers.${k}`, noGrad(() => (p.dtype === 'f32' ? contiguousCopy(p) : castTo(p, 'f32')))]));
  }

  private adapterParams(name: string): [string, Tensor][] {
    return this.adapterTensors(name).map(([k, t]) => [k.slice('ln_tuning_layers.'.length), t]);
  }

  protected fold(name: string, undo: boolean, base: Module): void {
    if (undo) {
      for (const [k, t] of this.saved) {
        copyValues(base.param(k)!, t);
        t.dispose();
      }
      this.saved = [];
      return;
    }
    if (base === this.base) {
      if (this.saved.length) throw new Error(`LN_TUNING: only one adapter can be merged at a time (it replaces the norm's parameters)`);
      this.saved = this.baseParams().map(([k, p]) => [k, noGrad(() => contiguousCopy(p))]);
    }
    for (const [k, t] of this.adapterParams(name)) {
      const p = base.param(k)!;
      copyValues(p, p.dtype === t.dtype ? t : castTo(t, p.dtype));
    }
  }

  forward(x: Tensor): Tensor<'f32'> {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    if (names.length > 1) throw new Error(`LN_TUNING: ${names.length} active adapters; LayerNorm tuning runs one at a time (each replaces the norm)`);
    return withParams(this.base, this.adapterParams(names[0]!), () => this.base.forward(x));
  }
}
