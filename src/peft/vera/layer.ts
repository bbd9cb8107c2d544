/**
 * VeRA (vector-based random matrix adaptation; PEFT `VERA`): frozen random projections A [r, in] and B [out, r],
 * shared by every adapted layer and regenerated from `projection_prng_key`, and two trainable vectors per layer:
 *   ΔW = diag(λ_b)·B·diag(λ_d)·A,   λ_d [r] (`vera_lambda_d`), λ_b [out] (`vera_lambda_b`).
 * The scaled factors λ_d ⊙ A and λ_b ⊙ B (cheap: r·(in + out)) feed the fused LoRA op, whose backward returns their
 * gradients; autograd carries those to the vectors.
 * Projections, as PEFT draws them: one vera_A [r, max in] ~ U(±√(6/max in)) then one vera_B [max out, r] ~ U(±√(6/r))
 * (Kaiming-uniform, fan_in = columns) from torch's CPU generator seeded with `projection_prng_key`, the maxima taken over
 * the adapter's target layers; each layer uses A[:, :in] and B[:out, :]. Same seed, same numbers as Python PEFT.
 */
import { empty, full, keep, mul, randn, reshape, ones, zeros, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';
import { TorchCpuGenerator } from '../common/torch-rng.js';

export interface VeraSpec {
  r: number;
  seed: number;
  dropout: number;
  dInitial: number;
  init: boolean;
  /** Largest in- and out-features over the adapter's target layers: the shared projections' sizes. */
  maxIn: number;
  maxOut: number;
}

type Shared = { key: string; a: Float32Array; b: Float32Array };
/** The last shared pair drawn: every layer of an injection cuts its corner from it; held weakly (freed after). */
let lastShared: WeakRef<Shared> | null = null;

/** PEFT's shared projections for `seed`: vera_A [r, maxIn] then vera_B [maxOut, r], drawn from one torch generator. */
export function veraSharedProjections(seed: number, r: number, maxIn: number, maxOut: number): { a: Float32Array; b: Float32Array } {
  const key = `${seed}:${r}:${maxIn}:${maxOut}`;
  const cached = lastShared?.deref();
  if (cached?.key === key) return cached;
  const gen = new TorchCpuGenerator(seed);
  const a = gen.uniform(new Float32Array(r * maxIn), -Math.sqrt(6 / maxIn), Math.sqrt(6 / maxIn));
  const b = gen.uniform(new Float32Array(maxOut * r), -Math.sqrt(6 / r), Math.sqrt(6 / r));
  const shared = { key, a, b };
  lastShared = new WeakRef(shared);
  return shared;
}

/** A layer's frozen projections: A [r, in] and B [out, r], the top-left corners of the shared pair. */
export function veraProjections(spec: Pick<VeraSpec, 'seed' | 'r' | 'maxIn' | 'maxOut'>, inF: number, outF: number): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
  const { seed, r, maxIn, maxOut } = spec;
  if (inF > maxIn || outF > maxOut) throw new Error(`VeRA: a [${outF}, ${inF}] layer exceeds the shared projections' [${maxOut}, ${maxIn}]`);
  const shared = veraSharedProjections(seed, r, maxIn, maxOut);
  const a = empty([r, inF]);
  for (let i = 0; i < r; i++) a.data.set(shared.a.subarray(i * maxIn, i * maxIn + inF), i * inF);
  const b = empty([outF, r]);
  b.data.set(shared.b.subarray(0, outF * r));
  return { a, b };
}

export class VeraLinear extends LinearAdapterLayer<VeraSpec> {
  protected readonly method = 'VeRA';
  private readonly specs = new Map<string, VeraSpec>();
  private readonly projections = new Map<string, { a: Tensor<'f32'>; b: Tensor<'f32'> }>();

  protected create(name: string, spec: VeraSpec): void {
    const { a, b } = veraProjections(spec, this.inFeatures, this.outFeatures);
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

  /** Adapter `name`'s spec. */
  spec(name: string): VeraSpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`VeRA: no adapter '${name}'`);
    return s;
  }

  /** Adapter `name`'s frozen projections A [r, in] and B [out, r]. */
  projection(name: string): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
    const p = this.projections.get(name);
    if (!p) throw new Error(`VeRA: no adapter '${name}'`);
    return p;
  }

  protected contribution(name: string, training: boolean): Contribution {
    const { a, b } = this.projection(name);
    const spec = this.spec(name);
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
