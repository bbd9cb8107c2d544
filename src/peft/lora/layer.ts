/**
 * LoRA layers (PEFT `tuners/lora/layer.py`): a wrapper around a base Linear or Embedding that holds named
 * adapters. Linear: `y = base(x) + s·drop(x)·Aᵀ·Bᵀ` with A [r, in] (`lora_A.<name>.weight`) and B [out, r]
 * (`lora_B.<name>.weight`), computed by the fused {@link loraLinear} op. Embedding: `y = base(ids) + s·Aᵀ[ids]·Bᵀ`
 * with raw parameters A [r, vocab] (`lora_embedding_A.<name>`) and B [dim, r] (`lora_embedding_B.<name>`).
 *
 * bf16 base weights: the base GEMM runs in bf16 (fp32 accumulation) and so do the adapter GEMMs, on bf16 copies of
 * the f32 adapter weights, as PyTorch's autocast does (see op.ts); adapter weights, gradients and optimizer state stay
 * f32. Merging adds the f32 delta to an f32 copy of the weight and rounds back to bf16.
 */
import {
  backend,
  castTo,
  contiguousCopy,
  embedding,
  fromStorage,
  globalGenerator,
  keep,
  matmul,
  noGrad,
  rand,
  randn,
  scale,
  transpose,
  zeros,
  type Tensor,
} from '../../engine/index.js';
import { GemmDType } from '../../engine/backend/kernels.js';
import { Embedding, Linear, Module } from '../../nn/index.js';
import { ModuleDict, ParameterDict, type TunerLayer } from '../tuner.js';
import { loraLinear } from './op.js';
import { loraScaling, type LoraConfig } from './config.js';
import { linearInitFactors } from './init/index.js';

type F32 = Tensor<'f32'>;

/** Per-adapter hyper-parameters of one layer (after rank_pattern / alpha_pattern). */
export interface LoraAdapterSpec {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: LoraConfig['init_lora_weights'];
  /** The adapter's config (the data-driven inits read their sub-configs from it). */
  config?: LoraConfig;
}

/** A trainable leaf that outlives the scope it was made in. */
function leaf(t: Tensor): F32 {
  return keep(t) as F32;
}

/** Uniform(−1/√fanIn, 1/√fanIn): `kaiming_uniform_(a=√5)`, torch's default nn.Linear weight init. */
function kaimingUniform(shape: [number, number]): F32 {
  const bound = 1 / Math.sqrt(shape[1]);
  return rand(shape, -bound, bound, globalGenerator);
}

/**
 * `weight += sign·s·Δ` where Δ = B·A [out, in] in the weight's layout: `transposed` means the weight is stored
 * [in, out] (Conv1D, and every embedding: Δᵀ = Aᵀ·Bᵀ). One GEMM with beta = 1 accumulates straight into an f32
 * weight; a bf16 weight goes through an f32 copy and is rounded back.
 */
function addDelta(weight: Tensor, a: F32, b: F32, s: number, transposed: boolean): void {
  if (!weight.isContiguous()) throw new Error(`lora merge: base weight ${weight.describe()} must be contiguous`);
  const r = a.shape[0]!;
  const [rows, cols] = weight.shape as [number, number];
  const target = weight.dtype === 'f32' ? (weight as F32) : weight.dtype === 'bf16' ? castTo(weight, 'f32') : null;
  if (!target) throw new Error(`lora merge: cannot merge into a ${weight.describe()} weight (f32 or bf16 only)`);
  // Not transposed: W[out,in] += s·B[out,r]·A[r,in]. Transposed: W[in,out] += s·Aᵀ·Bᵀ (A stored [r,in], B [out,r]).
  const [x, y] = transposed ? [a, b] : [b, a];
  backend().gemm(GemmDType.F32, x.data, y.data, target.data, 1, rows, cols, r, transposed, transposed, 0, 0, 0, s, 1);
  if (target !== weight) {
    backend().castF32ToBF16(target.data, weight.data as Uint16Array, weight.size);
    target.dispose();
  }
}

/** Bookkeeping shared by the LoRA layer types: ranks, scalings, active / merged adapters. */
export abstract class LoraLayer extends Module implements TunerLayer {
  readonly r = new Map<string, number>();
  readonly loraAlpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();
  readonly loraDropout = new Map<string, number>();
  protected active: string[] = [];
  enabled = true;
  private merged: string[] = [];

  constructor(readonly baseLayer: Module) {
    super();
    this.addModule('base_layer', baseLayer);
    this.training = baseLayer.training;
  }

  /** A [r, in] and B [out, r] of adapter `name` (embedding: A [r, vocab], B [dim, r]). */
  protected abstract factors(name: string): { a: F32; b: F32 };
  /** Creates the adapter's parameters (initialised per `spec.init`). */
  protected abstract createFactors(name: string, spec: LoraAdapterSpec): void;
  protected abstract removeFactors(name: string): void;
  /** The base weight and whether it is stored [in, out]. */
  protected abstract baseWeight(): { weight: Tensor; transposed: boolean };
  abstract adapterTensors(name: string): [string, Tensor][];

  adapterNames(): string[] {
    return [...this.r.keys()];
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  /** Adds (or replaces) adapter `name`. */
  addAdapter(name: string, spec: LoraAdapterSpec): void {
    if (!(Number.isInteger(spec.r) && spec.r > 0)) throw new Error(`LoRA: r should be a positive integer, got ${spec.r}`);
    if (this.r.has(name)) this.deleteAdapter(name);
    this.r.set(name, spec.r);
    this.loraAlpha.set(name, spec.alpha);
    this.scaling.set(name, loraScaling(spec.alpha, spec.r, spec.useRslora));
    this.loraDropout.set(name, spec.dropout);
    this.createFactors(name, spec);
  }

  setActiveAdapters(names: readonly string[], inferenceMode: boolean): void {
    this.active = names.filter((n) => this.r.has(n));
    for (const n of this.adapterNames()) {
      const trainable = this.active.includes(n) && !inferenceMode;
      for (const [, t] of this.adapterTensors(n)) t.requiresGrad = trainable;
    }
  }

  deleteAdapter(name: string): void {
    if (!this.r.has(name)) return;
    if (this.merged.includes(name)) throw new Error(`LoRA: adapter '${name}' is merged; unmerge before deleting it`);
    for (const [, t] of this.adapterTensors(name)) t.dispose();
    this.removeFactors(name);
    for (const m of [this.r, this.loraAlpha, this.scaling, this.loraDropout]) m.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  /** Adds adapter `name`'s scaled delta into `weight` (a tensor laid out like the base weight), times `sign`. */
  addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    const { a, b } = this.factors(name);
    noGrad(() => addDelta(weight, a, b, sign * this.scaling.get(name)!, this.baseWeight().transposed));
  }

  mergedParameters(names: readonly string[]): [string, Tensor][] {
    const { weight } = this.baseWeight();
    return this.baseLayer.namedParameters().map(([n, p]) => {
      if (p !== weight) return [n, p];
      const copy = noGrad(() => contiguousCopy(p));
      for (const a of names) this.addDeltaTo(copy, a, 1);
      return [n, copy];
    });
  }

  merge(names: readonly string[] = this.active): void {
    const { weight } = this.baseWeight();
    for (const n of names) {
      if (!this.r.has(n) || this.merged.includes(n)) continue;
      this.addDeltaTo(weight, n, 1);
      this.merged.push(n);
    }
  }

  unmerge(): void {
    const { weight } = this.baseWeight();
    while (this.merged.length) this.addDeltaTo(weight, this.merged.pop()!, -1);
  }

  /** The active adapters held here, or null when the base layer alone must run (disabled or merged). */
  protected forwardAdapters(): string[] | null {
    if (!this.enabled) {
      if (this.merged.length) this.unmerge();
      return null;
    }
    return this.merged.length ? null : this.active;
  }
}

/** LoRA around a `Linear` (including GPT-2 Conv1D layout, `fanInFanOut`). */
export class LoraLinear extends LoraLayer {
  private loraA = this.addModule('lora_A', new ModuleDict<Linear>());
  private loraB = this.addModule('lora_B', new ModuleDict<Linear>());

  constructor(readonly base: Linear) {
    super(base);
  }

  /** The base layer's weight (PEFT tuner layers expose it too; models may read it, e.g. a tied head). */
  get weight(): Tensor {
    return this.base.weight;
  }

  get bias(): Tensor | null {
    return this.base.bias;
  }

  protected factors(name: string): { a: F32; b: F32 } {
    return { a: this.loraA.get(name)!.weight as F32, b: this.loraB.get(name)!.weight as F32 };
  }

  protected createFactors(name: string, spec: LoraAdapterSpec): void {
    const { inFeatures, outFeatures } = this.base;
    // PiSSA, OLoRA, CorDA, LoRA-GA: factors from the base weight or data gathered beforehand (./init/).
    const init = linearInitFactors(this.base, spec.init, spec.r, loraScaling(spec.alpha, spec.r, spec.useRslora), spec.config);
    const a = init
      ? fromStorage(init.a, [spec.r, inFeatures], 'f32')
      : spec.init === false || spec.init === true
        ? kaimingUniform([spec.r, inFeatures])
        : randn([spec.r, inFeatures], 1 / spec.r);
    // init true / "gaussian" / "eva": B = 0 so the adapter starts as a no-op; init false: nn.Linear's default for B too.
    const b = init ? fromStorage(init.b, [outFeatures, spec.r], 'f32') : spec.init === false ? kaimingUniform([outFeatures, spec.r]) : zeros([outFeatures, spec.r]);
    this.loraA.set(name, new Linear(leaf(a)));
    this.loraB.set(name, new Linear(leaf(b)));
    if (init?.residual) this.addDeltaTo(this.base.weight, name, -1); // the base keeps W − s·B·A
  }

  protected removeFactors(name: string): void {
    this.loraA = this.addModule('lora_A', this.loraA.without(name));
    this.loraB = this.addModule('lora_B', this.loraB.without(name));
  }

  protected baseWeight(): { weight: Tensor; transposed: boolean } {
    return { weight: this.base.weight, transposed: this.base.fanInFanOut };
  }

  adapterTensors(name: string): [string, Tensor][] {
    const { a, b } = this.factors(name);
    return [
      ['lora_A.weight', a],
      ['lora_B.weight', b],
    ];
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    if (!names) return this.base.forward(x);
    const adapters = names.map((n) => ({
      ...this.factors(n),
      scale: this.scaling.get(n)!,
      dropout: this.training ? this.loraDropout.get(n)! : 0,
    }));
    return loraLinear(x, this.base.weightOutIn(), this.base.bias, adapters);
  }
}

/** LoRA around an `Embedding`: A [r, vocab] and B [dim, r] are raw parameters, as in PEFT. */
export class LoraEmbedding extends LoraLayer {
  private embA = this.addModule('lora_embedding_A', new ParameterDict());
  private embB = this.addModule('lora_embedding_B', new ParameterDict());

  constructor(readonly base: Embedding) {
    super(base);
  }

  /** The base table (a tied output head reads it). */
  get weight(): Tensor {
    return this.base.weight;
  }

  protected factors(name: string): { a: F32; b: F32 } {
    return { a: this.embA.get(name)! as F32, b: this.embB.get(name)! as F32 };
  }

  protected createFactors(name: string, spec: LoraAdapterSpec): void {
    const { numEmbeddings, embeddingDim } = this.base;
    // PEFT: init true / "gaussian" → A = 0, B ~ N(0, 1) (the adapter starts as a no-op); false → both N(0, 1).
    const a = spec.init === false ? randn([spec.r, numEmbeddings]) : zeros([spec.r, numEmbeddings]);
    this.embA.set(name, leaf(a));
    this.embB.set(name, leaf(randn([embeddingDim, spec.r])));
  }

  protected removeFactors(name: string): void {
    this.embA = this.addModule('lora_embedding_A', this.embA.without(name));
    this.embB = this.addModule('lora_embedding_B', this.embB.without(name));
  }

  protected baseWeight(): { weight: Tensor; transposed: boolean } {
    return { weight: this.base.weight, transposed: true };
  }

  adapterTensors(name: string): [string, Tensor][] {
    const { a, b } = this.factors(name);
    return [
      ['lora_embedding_A', a],
      ['lora_embedding_B', b],
    ];
  }

  forward(ids: Tensor): F32 {
    const names = this.forwardAdapters();
    let y = this.base.forward(ids);
    for (const n of names ?? []) {
      const { a, b } = this.factors(n);
      const afterA = embedding(transpose(a), ids); // rows of Aᵀ [vocab, r]
      y = y.add(scale(matmul(afterA, transpose(b)), this.scaling.get(n)!));
    }
    return y;
  }
}
