/**
 * GPT-2 (HF `GPT2LMHeadModel`): learned token and position embeddings, pre-LayerNorm blocks
 * x += c_proj(attention(split(c_attn(ln_1(x))))); x += c_proj(act(c_fc(ln_2(x)))), a final ln_f, and an output
 * head tied to `transformer.wte`. The projections are HF `Conv1D`s whose weights are stored [in, out]; they are
 * `nn.Linear`s with `fanInFanOut` (read transposed, never copied), so LoRA sees the same names and layout as PEFT.
 *
 * Not implemented: `scale_attn_by_inverse_layer_idx` (rejected with an error), cross-attention, dropout on the
 * attention probabilities (the fused kernel has none; residual and embedding dropout are applied when training).
 */
import { add, attention, crossEntropy, dropout, gelu, globalGenerator, linear, narrow, relu, reshape, squeeze, tensor, type Tensor } from '../engine/index.js';
import { Embedding, LayerNorm, Linear, Module, ModuleList, withSequenceContext } from '../nn/index.js';
import type { ConfigReader } from './config.js';
import { positionsOf } from './llama.js';
import { KVCache, type CausalLM, type ForwardOptions, type ModelConfig, type WeightSource } from './types.js';

/** An activation function by its HF name (`activation_function`, `hidden_act`, DistilBERT `activation`). */
export type Activation = (x: Tensor) => Tensor<'f32'>;

const ACTIVATIONS: Record<string, Activation> = {
  gelu: (x) => gelu(x, 'none'),
  gelu_new: (x) => gelu(x, 'tanh'),
  gelu_pytorch_tanh: (x) => gelu(x, 'tanh'),
  relu,
};

/** The activation config field `field` names; the error lists the supported ones. */
export function parseActivation(cfg: ConfigReader, field: string, fallback: string): Activation {
  const name = cfg.has(field) ? cfg.string(field) : fallback;
  const fn = ACTIVATIONS[name];
  if (!fn) throw new Error(`${cfg.source}: field "${field}" is "${name}"; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return fn;
}

export interface GPT2Config extends ModelConfig {
  layerNormEps: number;
  activation: Activation;
  /** Attention score scale: 1/√headDim, or 1 when `scale_attn_weights` is false. */
  attnScale: number;
  /** Dropout on the embeddings and on each residual branch, when training. */
  embdPdrop: number;
  residPdrop: number;
}

/** The normalised config of a GPT-2 config.json. */
export function parseGPT2Config(cfg: ConfigReader): GPT2Config {
  const hiddenSize = cfg.int('n_embd');
  const numHeads = cfg.int('n_head');
  const headDim = hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new Error(`${cfg.source}: n_embd (${hiddenSize}) must be a multiple of n_head (${numHeads})`);
  if (cfg.bool('scale_attn_by_inverse_layer_idx', false))
    throw new Error(`${cfg.source}: field "scale_attn_by_inverse_layer_idx" is true, which is not supported`);
  if (cfg.bool('add_cross_attention', false)) throw new Error(`${cfg.source}: field "add_cross_attention" is true, which is not supported`);
  return {
    modelType: cfg.string('model_type'),
    vocabSize: cfg.int('vocab_size'),
    hiddenSize,
    intermediateSize: cfg.int('n_inner', 4 * hiddenSize),
    numLayers: cfg.int('n_layer'),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    maxPositions: cfg.int('n_positions'),
    ...cfg.tokens(),
    tieWordEmbeddings: true,
    raw: cfg.raw,
    layerNormEps: cfg.number('layer_norm_epsilon', 1e-5),
    activation: parseActivation(cfg, 'activation_function', 'gelu_new'),
    attnScale: cfg.bool('scale_attn_weights', true) ? 1 / Math.sqrt(headDim) : 1,
    embdPdrop: cfg.number('embd_pdrop', 0.1),
    residPdrop: cfg.number('resid_pdrop', 0.1),
  };
}

/** A Conv1D: weight stored [in, out]. */
function conv1d(w: WeightSource, name: string, inF: number, outF: number): Linear {
  return new Linear(w.get(`${name}.weight`, [inF, outF], 'matrix'), w.get(`${name}.bias`, [outF], 'vector'), true);
}

function layerNormFrom(w: WeightSource, name: string, dim: number, eps: number): LayerNorm {
  return new LayerNorm(w.get(`${name}.weight`, [dim], 'vector'), w.get(`${name}.bias`, [dim], 'vector'), eps);
}

export class GPT2Attention extends Module {
  declare readonly c_attn: Linear;
  declare readonly c_proj: Linear;

  constructor(c: GPT2Config, w: WeightSource, prefix: string) {
    super();
    this.addModule('c_attn', conv1d(w, `${prefix}.c_attn`, c.hiddenSize, 3 * c.hiddenSize));
    this.addModule('c_proj', conv1d(w, `${prefix}.c_proj`, c.hiddenSize, c.hiddenSize));
  }
}

export class GPT2MLP extends Module {
  declare readonly c_fc: Linear;
  declare readonly c_proj: Linear;

  constructor(
    private readonly c: GPT2Config,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    this.addModule('c_fc', conv1d(w, `${prefix}.c_fc`, c.hiddenSize, c.intermediateSize));
    this.addModule('c_proj', conv1d(w, `${prefix}.c_proj`, c.intermediateSize, c.hiddenSize));
  }

  forward(x: Tensor): Tensor<'f32'> {
    return this.c_proj.forward(this.c.activation(this.c_fc.forward(x)));
  }
}

/** What every block of one forward pass shares. */
interface BlockContext {
  keyMask: Tensor | null;
  cache: KVCache | null;
}

export class GPT2Block extends Module {
  declare readonly ln_1: LayerNorm;
  declare readonly attn: GPT2Attention;
  declare readonly ln_2: LayerNorm;
  declare readonly mlp: GPT2MLP;

  constructor(
    private readonly c: GPT2Config,
    w: WeightSource,
    readonly index: number,
  ) {
    super();
    const p = `transformer.h.${index}`;
    this.addModule('ln_1', layerNormFrom(w, `${p}.ln_1`, c.hiddenSize, c.layerNormEps));
    this.addModule('attn', new GPT2Attention(c, w, `${p}.attn`));
    this.addModule('ln_2', layerNormFrom(w, `${p}.ln_2`, c.hiddenSize, c.layerNormEps));
    this.addModule('mlp', new GPT2MLP(c, w, `${p}.mlp`));
  }

  forward(x: Tensor, ctx: BlockContext): Tensor<'f32'> {
    const { numHeads: H, headDim: D, hiddenSize: C, residPdrop } = this.c;
    const [B, T] = x.shape as [number, number];
    // c_attn's output is [q | k | v], each H heads of D: view it as [B, T, 3, H, D] and take the three slices.
    const qkv = reshape(this.attn.c_attn.forward(this.ln_1.forward(x)), [B, T, 3, H, D]);
    const [q, k0, v0] = [0, 1, 2].map((i) => squeeze(narrow(qkv, 2, i, 1), 2)) as [Tensor, Tensor, Tensor];
    let k = k0;
    let v = v0;
    let length: number | undefined;
    if (ctx.cache) ({ k, v, length } = ctx.cache.write(this.index, k, v));
    const y = attention(q, k, v, { keyMask: ctx.keyMask, length, scale: this.c.attnScale });
    const drop = (t: Tensor) => dropout(t, residPdrop, globalGenerator, this.training);
    const x2 = add(x, drop(this.attn.c_proj.forward(reshape(y, [B, T, C]))));
    return add(x2, drop(this.mlp.forward(this.ln_2.forward(x2))));
  }
}

export class GPT2Model extends Module {
  declare readonly wte: Embedding;
  declare readonly wpe: Embedding;
  declare readonly h: ModuleList<GPT2Block>;
  declare readonly ln_f: LayerNorm;

  constructor(c: GPT2Config, w: WeightSource) {
    super();
    this.addModule('wte', new Embedding(w.get('transformer.wte.weight', [c.vocabSize, c.hiddenSize], 'embedding')));
    this.addModule('wpe', new Embedding(w.get('transformer.wpe.weight', [c.maxPositions, c.hiddenSize], 'embedding')));
    this.addModule('h', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new GPT2Block(c, w, i))));
    this.addModule('ln_f', layerNormFrom(w, 'transformer.ln_f', c.hiddenSize, c.layerNormEps));
  }
}

/** HF `GPT2LMHeadModel`; the output head is `transformer.wte.weight` (there is no `lm_head` module). */
export class GPT2LMHeadModel extends Module implements CausalLM {
  declare readonly transformer: GPT2Model;

  constructor(
    readonly config: GPT2Config,
    w: WeightSource,
  ) {
    super();
    this.addModule('transformer', new GPT2Model(config, w));
  }

  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor<'f32'> {
    if (ids.dtype !== 'i32' || ids.rank !== 2) throw new Error(`GPT2LMHeadModel.forward: ids must be i32 [B, T], got ${ids.describe()}`);
    const [B, T] = ids.shape as [number, number];
    const cache = opts.cache ?? null;
    const past = cache?.length ?? 0;
    const mask = opts.attentionMask ?? null;
    if (mask && (mask.dtype !== 'u8' || mask.shape.join() !== [B, past + T].join()))
      throw new Error(`GPT2LMHeadModel.forward: attentionMask must be u8 [${B}, ${past + T}] (cached + new positions), got ${mask.describe()}`);
    const { positions, shared } = positionsOf(B, T, past, mask, opts.positions ?? null);
    const maxPos = positions.reduce((a, b) => Math.max(a, b), 0);
    if (maxPos >= this.config.maxPositions)
      throw new Error(`GPT2LMHeadModel.forward: position ${maxPos} is beyond the ${this.config.maxPositions} learned positions (n_positions)`);
    const tr = this.transformer;
    const pos = tensor(positions, shared ? [T] : [B, T], 'i32');
    // [T, C] position rows broadcast over the batch (or [B, T, C] with per-row positions).
    let x = dropout(add(tr.wte.forward(ids), tr.wpe.forward(pos)), this.config.embdPdrop, globalGenerator, this.training);
    const ctx: BlockContext = { keyMask: mask, cache };
    x = withSequenceContext({ keyMask: mask, past, state: cache?.layerState ?? null }, () => {
      for (const block of tr.h.items) x = block.forward(x, ctx);
      return x;
    });
    cache?.advance(T);
    const keep = opts.logitsToKeep ?? 0;
    if (keep > 0 && keep < T) x = narrow(x, 1, T - keep, keep) as Tensor<'f32'>;
    return linear(tr.ln_f.forward(x), tr.wte.weight);
  }

  loss(ids: Tensor, targets: Tensor): Tensor<'f32'> {
    return crossEntropy(this.forward(ids), targets, { ignoreIndex: -100 });
  }

  createCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    return new KVCache(c.numLayers, batch, capacity, c.numHeads, c.headDim);
  }
}

/** The registry entry: config.json → GPT-2. */
export const gpt2Architecture = {
  modelTypes: ['gpt2'],
  basePrefix: 'transformer',
  build: (cfg: ConfigReader, w: WeightSource) => new GPT2LMHeadModel(parseGPT2Config(cfg), w),
  // The causal-mask buffers older checkpoints saved, and a saved copy of the tied head.
  ignoreUnexpected: [/(^|\.)attn\.(masked_)?bias$/, /^lm_head\.weight$/],
};
