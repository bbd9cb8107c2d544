/**
 * The model interfaces every architecture implements, the KV cache they share, and the weight source they are
 * built from. LoRA, training, generation and serving depend only on these.
 */
import { backend, empty, keep, narrow, type Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';

/** A Hugging Face config.json (or the equivalent a llama2.c header is turned into). */
export type RawConfig = Record<string, unknown>;

/** The architecture-independent view of a config.json; architectures extend it with their own fields. */
export interface ModelConfig {
  /** config.json `model_type` ('llama', 'mistral', 'qwen2', 'gpt2', …). */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  /** Width of the MLP's hidden layer. */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention); equals `numHeads` for multi-head attention. */
  numKvHeads: number;
  headDim: number;
  /** Longest sequence the model was trained for (`max_position_embeddings`, `n_positions`, llama2.c `seq_len`). */
  maxPositions: number;
  bosTokenId: number | null;
  /** Every id that ends a generation (config.json `eos_token_id`, one or a list). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The output head reuses the token embedding matrix (no `lm_head.weight` of its own). */
  tieWordEmbeddings: boolean;
  /** The config.json object as read. */
  raw: RawConfig;
}

/** Options of a causal-LM forward pass. */
export interface ForwardOptions {
  /**
   * Keys and values of earlier positions; this call's are appended to it (inference only: no gradient flows
   * through a cache). Without it the call sees only `ids`.
   */
  cache?: KVCache;
  /**
   * u8 [B, S_total] with S_total = positions already in the cache + T: 0 marks padding (generation pads prompts
   * on the left). Positions then count only the real tokens of each row, as HF does.
   */
  attentionMask?: Tensor;
  /** i32 [B, T] explicit positions (overrides those derived from the cache and the mask). */
  positions?: Tensor;
  /** Compute logits only for the last N positions (HF `logits_to_keep`); 0 or absent = all. */
  logitsToKeep?: number;
}

/** Any pretrained model: a Module tree whose parameter names are the checkpoint's, plus its config. */
export interface PretrainedModel extends Module {
  readonly config: ModelConfig;
}

/** A decoder-only language model. */
export interface CausalLM extends PretrainedModel {
  /** ids i32 [B, T] → logits f32 [B, T, V] (or [B, logitsToKeep, V]). */
  forward(ids: Tensor, opts?: ForwardOptions): Tensor<'f32'>;
  /**
   * Mean cross-entropy of `forward(ids)` against `targets` i32 [B, T], where `targets[b][t]` is the token that
   * should follow `ids[b][t]` (the caller shifts); targets equal to −100 are ignored.
   */
  loss(ids: Tensor, targets: Tensor): Tensor<'f32'>;
  /** An empty cache for `batch` rows and up to `capacity` positions. */
  createCache(batch: number, capacity: number): KVCache;
}

/** Whether `m` is a {@link CausalLM}. */
export function isCausalLM(m: PretrainedModel): m is CausalLM {
  const c = m as unknown as Partial<CausalLM>;
  return typeof c.forward === 'function' && typeof c.loss === 'function' && typeof c.createCache === 'function';
}

/**
 * Per-layer key and value buffers [B, capacity, KVH, D] (f32) for incremental decoding. A forward pass writes its
 * T new positions of every layer at `[length, length + T)` and then calls {@link advance}; attention reads the
 * buffers directly with `length` (the kernel accepts a capacity larger than the used length).
 */
export class KVCache {
  readonly keys: Tensor<'f32'>[] = [];
  readonly values: Tensor<'f32'>[] = [];
  /** Positions filled so far. */
  length = 0;
  /** State other layers carry across decoding steps (MeteoRA's prefix sums), keyed by the layer. */
  readonly layerState = new Map<object, unknown>();

  constructor(
    numLayers: number,
    readonly batch: number,
    readonly capacity: number,
    readonly numKvHeads: number,
    readonly headDim: number,
  ) {
    for (let l = 0; l < numLayers; l++) {
      this.keys.push(keep(empty([batch, capacity, numKvHeads, headDim])));
      this.values.push(keep(empty([batch, capacity, numKvHeads, headDim])));
    }
  }

  /**
   * Copies `k`, `v` [B, T, KVH, D] of `layer` into positions `[length, length + T)`; returns the whole buffers
   * and the number of positions they then hold.
   */
  write(layer: number, k: Tensor, v: Tensor): { k: Tensor<'f32'>; v: Tensor<'f32'>; length: number } {
    const T = k.shape[1]!;
    const want = [this.batch, T, this.numKvHeads, this.headDim].join(', ');
    if (k.shape.join(', ') !== want || v.shape.join(', ') !== want)
      throw new Error(`KVCache.write: layer ${layer} got k ${k.describe()}, v ${v.describe()}, expected [${want}]`);
    if (this.length + T > this.capacity)
      throw new Error(`KVCache.write: ${this.length} + ${T} positions exceed the capacity ${this.capacity}`);
    for (const [src, buf] of [
      [k, this.keys[layer]!],
      [v, this.values[layer]!],
    ] as const) {
      const slot = narrow(buf, 1, this.length, T);
      backend().copyStrided(src.data, [...src.strides], slot.data, [...slot.strides], [...src.shape]);
      slot.dispose();
    }
    return { k: this.keys[layer]!, v: this.values[layer]!, length: this.length + T };
  }

  /** Marks `T` more positions as filled (after every layer has written them). */
  advance(T: number): void {
    this.length += T;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

/**
 * What a parameter is, which decides the dtype it is loaded in: `matrix` (projection weights: the requested
 * dtype), `embedding` (lookup tables: the requested dtype), `vector` (norm weights and biases: always f32).
 */
export type ParamRole = 'matrix' | 'embedding' | 'vector';

/** Where an architecture's constructor gets its tensors: a checkpoint, a llama2.c file, or random values. */
export interface WeightSource {
  /** The tensor `name` (HF name) with exactly `shape`, in the dtype `role` calls for; throws naming both if not. */
  get(name: string, shape: readonly number[], role: ParamRole): Tensor;
  /** Whether the source holds `name`. */
  has(name: string): boolean;
}
