/**
 * VeRA (vector-based random matrix adaptation; PEFT `VERA`): frozen random projections A [r, in] and B [out, r],
 * shared by every adapted layer and regenerated from `projection_prng_key`, and two trainable vectors per layer:
 *   ΔW = diag(λ_b)·B·diag(λ_d)·A,   λ_d [r] (`vera_lambda_d`), λ_b [out] (`vera_lambda_b`).
 * The scaled factors λ_d ⊙ A and λ_b ⊙ B (cheap: r·(in + out)) feed the fused LoRA op, whose backward returns their
 * gradients; autograd carries those to the vectors.
 * Projections: Kaiming-uniform, bound √(6/fan_in) as PEFT (A: fan_in = in, B: fan_in = r); each layer's A and B are
 * the top-left block of one seeded matrix ({@link seededBasis}), so layers of the same shape hold identical ones.
 */
import { full, keep, mul, randn, reshape, ones, zeros, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';
import { seededBasis } from '../common/seeded-basis.js';

export interface VeraSpec {
  r: number;
  seed: number;
  dropout: number;
  dInitial: number;
  init: boolean;
}

/** VeRA's frozen projections for a layer: A [r, in] and B [out, r] cut from the matrices seeded by `seed`. */
export function veraProjections(seed: number, r: number, inF: number, outF: number): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
  return { a: seededBasis(seed, 'vera_A', r, inF, Math.sqrt(6 / inF)), b: seededBasis(seed, 'vera_B', outF, r, Math.sqrt(6 / r)) };
}

export class VeraLinear extends LinearAdapterLayer<VeraSpec> {
  protected readonly method = 'VeRA';
  private readonly specs = new Map<string, VeraSpec>();
  private readonly projections = new Map<string, { a: Tensor<'f32'>; b: Tensor<'f32'> }>();

  protected create(name: string, spec: VeraSpec): void {
    const { a, b } = veraProjections(spec.seed, spec.r, this.inFeatures, this.outFeatures);
    this.projections.set(name, { a: keep(a), b: keep(b) });
    this.specs.set(name, spec);
    this.setAdapterTensors(name, [
      ['vera_lambda_b', spec.init ? zeros([this.outFeatures]) : ones([this.outFeatures])],
      ['vera_lambda_d', spec.init ? full([spec.r], spec.dInitial) : randn([spec.r])],
    ]);
  }

  protected override forget(name: string): void {
    const p = this.projections.get(name)!;
    p.a.dispose();
    p.b.dispose();
    this.projections.delete(name);
    this.specs.delete(name);
  }

  /** Adapter `name`'s frozen projections A [r, in] and B [out, r]. */
  projection(name: string): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
    const p = this.projections.get(name);
    if (!p) throw new Error(`VeRA: no adapter '${name}'`);
    return p;
  }

  protected contribution(name: string, training: boolean): Contribution {
    const { a, b } = this.projection(name);
    const spec = this.specs.get(name)!;
    const ld = this.tensor(name, 'vera_lambda_d');
    const lb = this.tensor(name, 'vera_lambda_b');
    return {
      kind: 'factors',
      factors: {
        a: mul(reshape(ld, [spec.r, 1]), a),
        b: mul(reshape(lb, [this.outFeatures, 1]), b),
        scale: 1,
        dropout: training ? spec.dropout : 0,
      },
    };
  }
}
