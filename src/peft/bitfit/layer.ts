/**
 * BitFit (Ben Zaken et al. 2022, "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked
 * Language-models"): only the bias terms train. Each adapter is a trainable copy of the wrapped module's bias
 * (`bitfit_bias`), used in its place by the module's own forward; the base bias stays frozen, so adapters can be
 * switched, disabled and saved like any other.
 */
import { castTo, contiguousCopy, noGrad, type Tensor } from '../../engine/index.js';
import type { Module } from '../../nn/index.js';
import { AdapterLayer } from '../common/adapter-layer.js';
import { withParams } from '../common/swap.js';

type Forward = Module & { forward(x: Tensor): Tensor<'f32'> };

export class BitFitLayer extends AdapterLayer {
  protected readonly method = 'BITFIT';

  constructor(readonly base: Forward) {
    super(base);
  }

  get weight(): Tensor | null {
    return this.base.param('weight');
  }

  /** Adds adapter `name`: an f32 copy of the base bias. */
  addAdapter(name: string): void {
    const b = this.base.param('bias');
    if (!b) throw new Error(`BITFIT: ${this.base.constructor.name} has no bias`);
    this.setAdapterTensors(name, [['bitfit_bias', noGrad(() => (b.dtype === 'f32' ? contiguousCopy(b) : castTo(b, 'f32')))]]);
  }

  protected fold(name: string): void {
    throw new Error(`BITFIT: adapter '${name}' cannot be merged (its biases replace the base ones; save the adapter instead)`);
  }

  forward(x: Tensor): Tensor<'f32'> {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    if (names.length > 1) throw new Error(`BITFIT: ${names.length} active adapters; each replaces the bias, so only one can be active`);
    return withParams(this.base, [['bias', this.tensor(names[0]!, 'bitfit_bias')]], () => this.base.forward(x));
  }
}
