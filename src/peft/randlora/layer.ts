/**
 * RandLoRA (full-rank updates from random low-rank bases; PEFT `RANDLORA`). With d = min(in, out), D = max(in, out)
 * and n = ⌈d/r⌉ bases:
 *   ΔW = (α/r)·Σ_j B_j·diag(Λ[:, j])·A·diag(Γ[j, :])     (written for in = d; transposed when out < in)
 * A [r, d] (one basis shared by the n terms) and B_j [D, r] are frozen, seeded by `projection_prng_key`; the
 * trainable Λ [r, n] (`randlora_lambda`) and Γ [n, d] (`randlora_gamma`) scale them. n·r ≥ d, so ΔW can reach full
 * rank d while training only n·(r + d) numbers. Stacking the terms gives one rank-n·r factor pair,
 *   Â [r·n, d] with Â[(i, j), c] = Λ[i, j]·A[i, c]·Γ[j, c],   B̂ [D, n·r] = [B_0 … B_{n−1}],
 * which goes through the fused LoRA op (Â builds by broadcasting; its gradient reaches Λ and Γ by autograd). The
 * pairing of Â's rows with B̂'s columns follows PEFT's flattening (row i·n + j meets column k with the same index).
 * Bases: uniform with unit standard deviation (PEFT normalises its Kaiming draws to std 1).
 */
import { full, keep, mul, randn, reshape, transpose, zeros, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';
import { seededBasis } from '../common/seeded-basis.js';

export interface RandLoraSpec {
  r: number;
  seed: number;
  scale: number;
  dropout: number;
  init: boolean;
}

/** The number of bases that makes the update full-rank for a layer of min dimension `d`. */
export function numBases(d: number, r: number): number {
  return Math.ceil(d / r);
}

/** The frozen bases of a layer: A [r, 1, d] and B [D, n·r] (cut from the matrices seeded by `seed`). */
export function randLoraBases(seed: number, r: number, inF: number, outF: number): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
  const [d, D] = [Math.min(inF, outF), Math.max(inF, outF)];
  const n = numBases(d, r);
  const unit = Math.sqrt(3); // U(±√3) has unit standard deviation
  return { a: seededBasis(seed, 'randlora_A', r, d, unit, [r, 1, d]), b: seededBasis(seed, 'randlora_B', D, n * r, unit) };
}

export class RandLoraLinear extends LinearAdapterLayer<RandLoraSpec> {
  protected readonly method = 'RandLoRA';
  private readonly specs = new Map<string, RandLoraSpec>();
  private readonly bases = new Map<string, { a: Tensor<'f32'>; b: Tensor<'f32'> }>();

  protected create(name: string, spec: RandLoraSpec): void {
    const { a, b } = randLoraBases(spec.seed, spec.r, this.inFeatures, this.outFeatures);
    this.bases.set(name, { a: keep(a), b: keep(b) });
    this.specs.set(name, spec);
    const d = Math.min(this.inFeatures, this.outFeatures);
    const n = numBases(d, spec.r);
    this.setAdapterTensors(name, [
      ['randlora_lambda', spec.init ? zeros([spec.r, n]) : randn([spec.r, n])],
      ['randlora_gamma', full([n, d], spec.init ? 1 / Math.max(n, d) : 1 / Math.max(this.inFeatures, this.outFeatures))],
    ]);
  }

  protected override forget(name: string): void {
    const b = this.bases.get(name)!;
    b.a.dispose();
    b.b.dispose();
    this.bases.delete(name);
    this.specs.delete(name);
  }

  /** Adapter `name`'s frozen bases A [r, 1, d] and B [D, n·r]. */
  basis(name: string): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
    const b = this.bases.get(name);
    if (!b) throw new Error(`RandLoRA: no adapter '${name}'`);
    return b;
  }

  protected contribution(name: string, training: boolean): Contribution {
    const spec = this.specs.get(name)!;
    const bases = this.bases.get(name)!;
    const lambda = this.tensor(name, 'randlora_lambda');
    const gamma = this.tensor(name, 'randlora_gamma');
    const [r, n] = lambda.shape as [number, number];
    const d = gamma.shape[1]!;
    // Â [r·n, d] = Λ[i, j]·A[i, c]·Γ[j, c]; B̂ [D, n·r].
    const aHat = reshape(mul(mul(reshape(lambda, [r, n, 1]), bases.a), reshape(gamma, [1, n, d])), [r * n, d]);
    const inIsMin = this.inFeatures === d;
    return {
      kind: 'factors',
      factors: {
        a: inIsMin ? aHat : transpose(bases.b),
        b: inIsMin ? bases.b : transpose(aHat),
        scale: spec.scale,
        dropout: training ? spec.dropout : 0,
      },
    };
  }
}
