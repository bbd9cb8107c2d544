/**
 * Houlsby bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP", §2.1 and
 * Fig. 2): after a sub-layer's output projection, `h ← h + W_up·f(W_down·h + b_down) + b_up` — down to m ≪ d,
 * nonlinearity, up, residual. With the "mam_adapter" init (zero W_up, b_up) the adapter starts as the identity.
 * Compacter (`phm_layer`): W_down and W_up are PHM layers, W = Σᵢ Aᵢ ⊗ (W_leftᵢ·W_rightᵢ) (see phm.ts).
 * The nonlinearity makes the adapter unmergeable. AdapterHub's tensor names, without its Sequential index:
 * `adapter_down.weight`/`.bias`, `adapter_up.weight`/`.bias`; PHM: `adapter_{down,up}.{phm_rule,W_left,W_right,b}`.
 */
import { add, gelu, globalGenerator, linear, matmul, rand, randn, relu, silu, tanh, zeros, type Tensor } from '../../engine/index.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import type { BottleneckConfig, NonLinearity } from './config.js';
import { phmWeight } from './phm.js';

const ACTIVATIONS: Record<NonLinearity, (x: Tensor) => Tensor<'f32'>> = { relu, gelu, swish: silu, silu, tanh };

/** Per-adapter settings of one layer. */
export interface BottleneckSpec {
  width: number;
  act: NonLinearity;
  phm: { n: number; rank: number; factorized: boolean; initRange: number } | null;
  init: BottleneckConfig['init_weights'];
}

/** The bottleneck width for a layer of output width `d`. */
export function bottleneckWidth(d: number, reductionFactor: number): number {
  return Math.max(1, Math.floor(d / reductionFactor));
}

export class BottleneckLinear extends AdaptedLinear {
  protected readonly method = 'BOTTLENECK';
  readonly specs = new Map<string, BottleneckSpec>();

  /** The tensors of one projection `which` from width `from` to `to`; `zero`: the up projection under "mam_adapter". */
  private projection(which: string, from: number, to: number, spec: BottleneckSpec, zero: boolean): [string, Tensor][] {
    if (spec.phm) {
      const { n, rank, factorized, initRange } = spec.phm;
      if (from % n || to % n) throw new Error(`BOTTLENECK: phm_dim ${n} must divide the projection widths ${from} → ${to} (${which})`);
      const [p, q] = [from / n, to / n];
      const blocks: [string, Tensor][] = factorized
        ? [
            [`${which}.W_left`, randn([n, p, rank], initRange)],
            [`${which}.W_right`, zero ? zeros([n, rank, q]) : randn([n, rank, q], initRange)],
          ]
        : [[`${which}.W`, zero ? zeros([n, p, q]) : randn([n, p, q], initRange)]];
      return [[`${which}.phm_rule`, randn([n, n, n], 0.01)], ...blocks, [`${which}.b`, zeros([to])]];
    }
    const bound = 1 / Math.sqrt(from);
    const w = zero ? zeros([to, from]) : spec.init === 'bert' ? randn([to, from], 0.02) : rand([to, from], -bound, bound, globalGenerator);
    return [
      [`${which}.weight`, w],
      [`${which}.bias`, zeros([to])],
    ];
  }

  addAdapter(name: string, spec: BottleneckSpec): void {
    const d = this.base.outFeatures;
    this.specs.set(name, spec);
    this.setAdapterTensors(name, [
      ...this.projection('adapter_down', d, spec.width, spec, false),
      ...this.projection('adapter_up', spec.width, d, spec, spec.init === 'mam_adapter'),
    ]);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  /** `x·Wᵀ + b` for projection `which` of adapter `name` (PHM: `x·W + b` with W [in, out] built from its factors). */
  private project(x: Tensor, name: string, which: string): Tensor<'f32'> {
    if (!this.specs.get(name)!.phm) return linear(x, this.tensor(name, `${which}.weight`), this.tensor(name, `${which}.bias`));
    const t = (k: string) => this.tensor(name, `${which}.${k}`);
    const w = this.hasTensor(name, `${which}.W`) ? phmWeight(t('phm_rule'), t('W'), null) : phmWeight(t('phm_rule'), t('W_left'), t('W_right'));
    return add(matmul(x, w), t('b'));
  }

  protected fold(name: string): void {
    throw new Error(`BOTTLENECK: adapter '${name}' cannot be merged (the bottleneck's nonlinearity is not a linear map)`);
  }

  forward(x: Tensor): Tensor<'f32'> {
    let h = this.base.forward(x);
    for (const n of this.forwardAdapters() ?? []) {
      const mid = ACTIVATIONS[this.specs.get(n)!.act](this.project(h, n, 'adapter_down'));
      h = add(h, this.project(mid, n, 'adapter_up'));
    }
    return h;
  }
}
