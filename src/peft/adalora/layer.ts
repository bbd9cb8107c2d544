/**
 * AdaLoRA's layer (PEFT `SVDLinear`): ΔW in SVD form P·Λ·Q,
 *   ΔW = B·diag(E)·A · α / (ranknum + 1e-5)       A = Q [r, in] (`lora_A`), E = Λ [r, 1] (`lora_E`), B = P [out, r] (`lora_B`)
 * with ranknum = init_r fixed (PEFT: α = `lora_alpha`, or r when it is 0). Rank is allocated by zeroing entries of E
 * ({@link RankAllocator}); the factors stay full-size during training, and a saved adapter keeps only the
 * components the config's `rank_pattern` marks (PEFT's resize on save), which is also the rank a loaded one gets.
 * Init (PEFT): E = 0, A and B ~ N(0, 0.02²). (A ⊙ E) and B of the components the forward uses
 * ({@link AdaLoraLinear.activeFactors}: all of them here; IncreLoRA's layer narrows them) go through the fused LoRA op.
 */
import { mul, randn, zeros, fromStorage, type Tensor } from '../../engine/index.js';
import { LinearAdapterLayer, type Contribution } from '../common/linear-adapter.js';

type F32 = Tensor<'f32'>;

export interface AdaLoraSpec {
  /** Components created here (init_r, or those kept by a loaded rank_pattern). */
  r: number;
  /** init_r: the rank the scaling divides by. */
  ranknum: number;
  alpha: number;
  dropout: number;
  init: boolean;
}

export class AdaLoraLinear<S extends AdaLoraSpec = AdaLoraSpec> extends LinearAdapterLayer<S> {
  protected readonly method: string = 'AdaLoRA';
  private readonly specs = new Map<string, S>();
  /** Components kept by the last allocation (null: all). */
  private readonly kept = new Map<string, boolean[] | null>();

  protected create(name: string, spec: S): void {
    const { inFeatures: inF, outFeatures: outF } = this;
    this.specs.set(name, spec);
    this.kept.set(name, null);
    this.setAdapterTensors(name, [
      ['lora_A', randn([spec.r, inF], spec.init ? 0.02 : 1)],
      ['lora_B', randn([outF, spec.r], spec.init ? 0.02 : 1)],
      ['lora_E', spec.init ? zeros([spec.r, 1]) : randn([spec.r, 1])],
    ]);
  }

  protected override forget(name: string): void {
    this.specs.delete(name);
    this.kept.delete(name);
  }

  /** Adapter `name`'s P [out, r], Λ [r, 1] and Q [r, in]. */
  svdFactors(name: string): { a: F32; e: F32; b: F32 } {
    return { a: this.tensor(name, 'lora_A'), e: this.tensor(name, 'lora_E'), b: this.tensor(name, 'lora_B') };
  }

  /** The factors the forward, the merge and the orthogonal regulariser use: here all of {@link svdFactors}. */
  activeFactors(name: string): { a: F32; e: F32; b: F32 } {
    return this.svdFactors(name);
  }

  /** Zeroes the entries of Λ that `kept` marks false, and remembers the mask for saving. */
  applyRankMask(name: string, kept: boolean[]): void {
    const e = this.tensor(name, 'lora_E');
    if (kept.length !== e.shape[0]) throw new Error(`${this.method}: rank mask has ${kept.length} entries for rank ${e.shape[0]}`);
    kept.forEach((k, i) => {
      if (!k) e.data[i] = 0;
    });
    this.kept.set(name, kept.every(Boolean) ? null : [...kept]);
  }

  /** The number of components adapter `name` keeps (non-masked). */
  keptRank(name: string): number {
    return this.kept.get(name)?.filter(Boolean).length ?? this.specs.get(name)!.r;
  }

  /** The checkpoint tensors: the kept components only, once a rank mask prunes some (fresh copies then). */
  override adapterTensors(name: string): [string, Tensor][] {
    const all = super.adapterTensors(name);
    const kept = this.kept.get(name);
    if (!kept) return all;
    const rows = kept.flatMap((k, i) => (k ? [i] : []));
    const { a, e, b } = this.svdFactors(name);
    const pick = (t: F32, byColumn: boolean): Tensor => {
      const [m, n] = t.shape as [number, number];
      const out = byColumn ? new Float32Array(m * rows.length) : new Float32Array(rows.length * n);
      if (byColumn) for (let i = 0; i < m; i++) rows.forEach((c, j) => (out[i * rows.length + j] = t.data[i * n + c]!));
      else rows.forEach((r, j) => out.set(t.data.subarray(r * n, (r + 1) * n), j * n));
      return fromStorage(out, byColumn ? [m, rows.length] : [rows.length, n], 'f32');
    };
    return [
      ['lora_A', pick(a, false)],
      ['lora_B', pick(b, true)],
      ['lora_E', pick(e, false)],
    ];
  }

  /** A module pruned to rank 0 (loaded from a rank_pattern that keeps none of its components) adds nothing. */
  override addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    if (this.specs.get(name)!.r > 0) super.addDeltaTo(weight, name, sign);
  }

  protected contribution(name: string, training: boolean): Contribution | null {
    const spec = this.specs.get(name)!;
    if (spec.r === 0) return null;
    const { a, e, b } = this.activeFactors(name);
    return { kind: 'factors', factors: { a: mul(a, e), b, scale: spec.alpha / (spec.ranknum + 1e-5), dropout: training ? spec.dropout : 0 } };
  }
}
