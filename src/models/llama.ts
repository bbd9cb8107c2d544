/**
 * The Llama family in one implementation: Llama 1/2/3 (and SmolLM, TinyLlama…), Mistral, Qwen2 (q/k/v biases).
 * Pre-norm decoder blocks: x += o_proj(attention(rope(q), rope(k), v)); x += down(silu(gate(x))·up(x)), both on
 * RMSNorm-ed inputs; grouped-query attention; tied or separate output head. Modules and parameters carry exactly
 * the HF `LlamaForCausalLM` names, and every projection is an `nn.Linear` called through `forward()`.
 *
 * Not implemented: Mistral/Qwen2 sliding-window attention (identical results up to `sliding_window` tokens) and
 * partial rotary factors.
 */
import { add, attention, crossEntropy, linear, narrow, reshape, rope, swiglu, type Tensor } from '../engine/index.js';
import { Embedding, Linear, Module, ModuleList, RMSNorm, withSequenceContext } from '../nn/index.js';
import type { ConfigReader } from './config.js';
import { parseRopeScaling, RotaryEmbedding, type RopeScaling } from './rope.js';
import { KVCache, type CausalLM, type ForwardOptions, type ModelConfig, type WeightSource } from './types.js';

export interface LlamaConfig extends ModelConfig {
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** Rotate pairs (2i, 2i+1) — llama2.c / Meta weights — instead of HF's (i, i + D/2). */
  ropeInterleaved: boolean;
  /** Biases on q/k/v/o (`attention_bias`; Qwen2 has them on q/k/v only). */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
}

/** The normalised config of a Llama-family config.json. */
/** The layers each Llama config flag gives biases to (HF `LlamaConfig`): every layer of a group or none. */
export const LLAMA_BIAS_GROUPS: Readonly<Record<'attention_bias' | 'mlp_bias', readonly string[]>> = {
  attention_bias: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  mlp_bias: ['gate_proj', 'up_proj', 'down_proj'],
};

export function parseLlamaConfig(cfg: ConfigReader): LlamaConfig {
  const modelType = cfg.string('model_type');
  const hiddenSize = cfg.int('hidden_size');
  const numHeads = cfg.int('num_attention_heads');
  const numKvHeads = cfg.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0)
    throw new Error(`${cfg.source}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = cfg.int('head_dim', hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new Error(`${cfg.source}: head dimension ${headDim} (hidden_size / num_attention_heads or head_dim) must be an even integer`);
  const act = cfg.has('hidden_act') ? cfg.string('hidden_act') : 'silu';
  if (act !== 'silu') throw new Error(`${cfg.source}: field "hidden_act" is "${act}"; the Llama family here supports "silu"`);
  const maxPositions = cfg.int('max_position_embeddings', 2048);
  const qwen = modelType === 'qwen2';
  const attentionBias = cfg.bool('attention_bias', false);
  return {
    modelType,
    vocabSize: cfg.int('vocab_size'),
    hiddenSize,
    intermediateSize: cfg.int('intermediate_size'),
    numLayers: cfg.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    ...cfg.tokens(),
    tieWordEmbeddings: cfg.bool('tie_word_embeddings', false),
    raw: cfg.raw,
    rmsNormEps: cfg.number('rms_norm_eps', 1e-6),
    ropeTheta: cfg.number('rope_theta', 10000),
    ropeScaling: parseRopeScaling(cfg, maxPositions),
    ropeInterleaved: false,
    qkvBias: qwen || attentionBias,
    oBias: !qwen && attentionBias,
    mlpBias: cfg.bool('mlp_bias', false),
  };
}

function linearFrom(w: WeightSource, name: string, out: number, inF: number, bias: boolean): Linear {
  return new Linear(w.get(`${name}.weight`, [out, inF], 'matrix'), bias ? w.get(`${name}.bias`, [out], 'vector') : null);
}

export class LlamaAttention extends Module {
  declare readonly q_proj: Linear;
  declare readonly k_proj: Linear;
  declare readonly v_proj: Linear;
  declare readonly o_proj: Linear;

  constructor(c: LlamaConfig, w: WeightSource, prefix: string) {
    super();
    const q = c.numHeads * c.headDim;
    const kv = c.numKvHeads * c.headDim;
    this.addModule('q_proj', linearFrom(w, `${prefix}.q_proj`, q, c.hiddenSize, c.qkvBias));
    this.addModule('k_proj', linearFrom(w, `${prefix}.k_proj`, kv, c.hiddenSize, c.qkvBias));
    this.addModule('v_proj', linearFrom(w, `${prefix}.v_proj`, kv, c.hiddenSize, c.qkvBias));
    this.addModule('o_proj', linearFrom(w, `${prefix}.o_proj`, c.hiddenSize, q, c.oBias));
  }
}

export class LlamaMLP extends Module {
  declare readonly gate_proj: Linear;
  declare readonly up_proj: Linear;
  declare readonly down_proj: Linear;

  constructor(c: LlamaConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('gate_proj', linearFrom(w, `${prefix}.gate_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias));
    this.addModule('up_proj', linearFrom(w, `${prefix}.up_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias));
    this.addModule('down_proj', linearFrom(w, `${prefix}.down_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias));
  }

  forward(x: Tensor): Tensor<'f32'> {
    return this.down_proj.forward(swiglu(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

/** What every layer of one forward pass shares: rotary tables, the key mask, the cache. */
interface LayerContext {
  cos: Tensor;
  sin: Tensor;
  keyMask: Tensor | null;
  cache: KVCache | null;
}

export class LlamaDecoderLayer extends Module {
  declare readonly self_attn: LlamaAttention;
  declare readonly mlp: LlamaMLP;
  declare readonly input_layernorm: RMSNorm;
  declare readonly post_attention_layernorm: RMSNorm;

  constructor(
    private readonly c: LlamaConfig,
    w: WeightSource,
    readonly index: number,
  ) {
    super();
    const p = `model.layers.${index}`;
    this.addModule('self_attn', new LlamaAttention(c, w, `${p}.self_attn`));
    this.addModule('mlp', new LlamaMLP(c, w, `${p}.mlp`));
    this.addModule('input_layernorm', new RMSNorm(w.get(`${p}.input_layernorm.weight`, [c.hiddenSize], 'vector'), c.rmsNormEps));
    this.addModule('post_attention_layernorm', new RMSNorm(w.get(`${p}.post_attention_layernorm.weight`, [c.hiddenSize], 'vector'), c.rmsNormEps));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor<'f32'> {
    const { numHeads: H, numKvHeads: KVH, headDim: D, ropeInterleaved } = this.c;
    const [B, T] = x.shape as [number, number];
    const a = this.self_attn;
    const h = this.input_layernorm.forward(x);
    const q = rope(reshape(a.q_proj.forward(h), [B, T, H, D]), ctx.cos, ctx.sin, ropeInterleaved);
    let k: Tensor = rope(reshape(a.k_proj.forward(h), [B, T, KVH, D]), ctx.cos, ctx.sin, ropeInterleaved);
    let v: Tensor = reshape(a.v_proj.forward(h), [B, T, KVH, D]);
    let length: number | undefined;
    if (ctx.cache) ({ k, v, length } = ctx.cache.write(this.index, k, v));
    const y = attention(q, k, v, { keyMask: ctx.keyMask, length });
    const x2 = add(x, a.o_proj.forward(reshape(y, [B, T, H * D])));
    return add(x2, this.mlp.forward(this.post_attention_layernorm.forward(x2)));
  }
}

export class LlamaModel extends Module {
  declare readonly embed_tokens: Embedding;
  declare readonly layers: ModuleList<LlamaDecoderLayer>;
  declare readonly norm: RMSNorm;

  constructor(c: LlamaConfig, w: WeightSource) {
    super();
    this.addModule('embed_tokens', new Embedding(w.get('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize], 'embedding')));
    this.addModule('layers', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new LlamaDecoderLayer(c, w, i))));
    this.addModule('norm', new RMSNorm(w.get('model.norm.weight', [c.hiddenSize], 'vector'), c.rmsNormEps));
  }
}

/**
 * HF `LlamaForCausalLM`. With tied embeddings there is no `lm_head` module: the logits are computed with
 * `model.embed_tokens.weight` (as HF, whose `named_parameters()` lists the shared weight once).
 */
export class LlamaForCausalLM extends Module implements CausalLM {
  declare readonly model: LlamaModel;
  declare readonly lm_head?: Linear;
  readonly rotary: RotaryEmbedding;

  constructor(
    readonly config: LlamaConfig,
    w: WeightSource,
  ) {
    super();
    const c = config;
    this.addModule('model', new LlamaModel(c, w));
    if (!c.tieWordEmbeddings) this.addModule('lm_head', linearFrom(w, 'lm_head', c.vocabSize, c.hiddenSize, false));
    this.rotary = new RotaryEmbedding(c.headDim, c.ropeTheta, c.ropeScaling, c.maxPositions);
  }

  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor<'f32'> {
    if (ids.dtype !== 'i32' || ids.rank !== 2) throw new Error(`LlamaForCausalLM.forward: ids must be i32 [B, T], got ${ids.describe()}`);
    const [B, T] = ids.shape as [number, number];
    const cache = opts.cache ?? null;
    const past = cache?.length ?? 0;
    const mask = opts.attentionMask ?? null;
    if (mask && (mask.dtype !== 'u8' || mask.shape.join() !== [B, past + T].join()))
      throw new Error(`LlamaForCausalLM.forward: attentionMask must be u8 [${B}, ${past + T}] (cached + new positions), got ${mask.describe()}`);
    const { positions, shared } = positionsOf(B, T, past, mask, opts.positions ?? null);
    const { cos, sin } = this.rotary.tables(positions, B, T, shared);
    const ctx: LayerContext = { cos, sin, keyMask: mask, cache };
    let x = this.model.embed_tokens.forward(ids);
    x = withSequenceContext({ keyMask: mask, past, state: cache?.layerState ?? null }, () => {
      for (const layer of this.model.layers.items) x = layer.forward(x, ctx);
      return x;
    });
    cache?.advance(T);
    const keep = opts.logitsToKeep ?? 0;
    if (keep > 0 && keep < T) x = narrow(x, 1, T - keep, keep) as Tensor<'f32'>;
    const h = this.model.norm.forward(x);
    return this.lm_head ? this.lm_head.forward(h) : linear(h, this.model.embed_tokens.weight);
  }

  loss(ids: Tensor, targets: Tensor): Tensor<'f32'> {
    return crossEntropy(this.forward(ids), targets, { ignoreIndex: -100 });
  }

  createCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    return new KVCache(c.numLayers, batch, capacity, c.numKvHeads, c.headDim);
  }
}

/**
 * Positions of the T new tokens of each row: explicit ones; else, with a padding mask, the count of real tokens
 * before each one (HF: cumsum(mask) − 1, padding at 0); else `past + t` for every row (`shared`). Shared by the
 * architectures that take ForwardOptions.
 */
export function positionsOf(B: number, T: number, past: number, mask: Tensor | null, explicit: Tensor | null): { positions: Int32Array; shared: boolean } {
  if (explicit) {
    if (explicit.dtype !== 'i32' || explicit.shape.join() !== [B, T].join())
      throw new Error(`forward: positions must be i32 [${B}, ${T}], got ${explicit.describe()}`);
    return { positions: explicit.toTyped() as Int32Array, shared: false };
  }
  if (!mask) return { positions: Int32Array.from({ length: T }, (_, t) => past + t), shared: true };
  const m = mask.toTyped() as Uint8Array;
  const S = past + T;
  const positions = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let s = 0; s < S; s++) {
      if (m[b * S + s]) seen++;
      if (s >= past) positions[b * T + s - past] = Math.max(seen - 1, 0);
    }
  }
  return { positions, shared: false };
}

/** The registry entry: config.json → a Llama-family model. */
export const llamaArchitecture = {
  modelTypes: ['llama', 'mistral', 'qwen2'],
  build: (cfg: ConfigReader, w: WeightSource) => new LlamaForCausalLM(parseLlamaConfig(cfg), w),
  // Older checkpoints saved the rotary inverse frequencies; tied ones sometimes also save the shared head.
  ignoreUnexpected: [/\.rotary_emb\.inv_freq$/, /^lm_head\.weight$/],
};
