/**
 * NOLA (networks as linear combinations of low-rank random bases): LoRA's A [r, in] and B [out, r] are
 * combinations of frozen random bases regenerated from a seed,
 *   A = Σ_i α_i·A_i (i < kA),   B = Σ_j β_j·B_j (j < kB),   ΔW = (nola_alpha / r)·B·A,
 * and only the coefficients α [kA] (`nola_coef_A`) and β [kB] (`nola_coef_B`) are trained and saved: the
 * parameter count is independent of rank and layer width. A and B are one GEMV each over the stacked bases
 * ([1, k]·[k, r·in]), then the fused LoRA op runs as for LoRA.
 * Bases are seeded per layer from (`projection_prng_key`, module name). Scales: A_i entries U(±√(3/in)),
 * B_i entries U(±√(3/r)); α ~ U(±1/√kA) so A starts with the variance of a Kaiming-initialised LoRA A; β = 0.
 */
import { keep, matmul, rand, reshape, zeros, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';
import { deriveSeed, seededBasis } from '../common/seeded-basis.js';

export interface NolaSpec {
  r: number;
  kA: number;
  kB: number;
  scale: number;
  dropout: number;
  /** Seed of this layer's bases. */
  seed: number;
  init: boolean;
}

/** A layer's bases, stacked: A as [kA, r·in], B as [kB, out·r]. */
export function nolaBases(spec: NolaSpec, inF: number, outF: number): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
  return {
    a: seededBasis(spec.seed, 'nola_A', spec.kA, spec.r * inF, Math.sqrt(3 / inF)),
    b: seededBasis(spec.seed, 'nola_B', spec.kB, outF * spec.r, Math.sqrt(3 / spec.r)),
  };
}

/** The seed of the bases of module `moduleName`. */
export function nolaLayerSeed(seed: number, moduleName: string): number {
  return deriveSeed(seed, moduleName);
}

export class NolaLinear extends LinearAdapterLayer<NolaSpec> {
  protected readonly method = 'NOLA';
  private readonly specs = new Map<string, NolaSpec>();
  private readonly bases = new Map<string, { a: Tensor<'f32'>; b: Tensor<'f32'> }>();

  protected create(name: string, spec: NolaSpec): void {
    const { a, b } = nolaBases(spec, this.inFeatures, this.outFeatures);
    this.bases.set(name, { a: keep(a), b: keep(b) });
    this.specs.set(name, spec);
    const bound = 1 / Math.sqrt(spec.kA);
    this.setAdapterTensors(name, [
      ['nola_coef_A', rand([spec.kA], -bound, bound)],
      ['nola_coef_B', spec.init ? zeros([spec.kB]) : rand([spec.kB], -1 / Math.sqrt(spec.kB), 1 / Math.sqrt(spec.kB))],
    ]);
  }

  protected override forget(name: string): void {
    const b = this.bases.get(name)!;
    b.a.dispose();
    b.b.dispose();
    this.bases.delete(name);
    this.specs.delete(name);
  }

  /** Adapter `name`'s A [r, in] and B [out, r] (differentiable in the coefficients). */
  factors(name: string): { a: Tensor<'f32'>; b: Tensor<'f32'> } {
    const spec = this.specs.get(name)!;
    const bases = this.bases.get(name)!;
    const combine = (coef: Tensor, basis: Tensor, k: number, shape: [number, number]) => reshape(matmul(reshape(coef, [1, k]), basis), shape);
    return {
      a: combine(this.tensor(name, 'nola_coef_A'), bases.a, spec.kA, [spec.r, this.inFeatures]),
      b: combine(this.tensor(name, 'nola_coef_B'), bases.b, spec.kB, [this.outFeatures, spec.r]),
    };
  }

  protected contribution(name: string, training: boolean): Contribution {
    const spec = this.specs.get(name)!;
    return { kind: 'factors', factors: { ...this.factors(name), scale: spec.scale, dropout: training ? spec.dropout : 0 } };
  }
}
