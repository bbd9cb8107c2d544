/**
 * Bidirectional encoders with a sequence-classification head, in HF layout:
 * - BERT (`BertForSequenceClassification`): word + position + token-type embeddings → LayerNorm; post-LayerNorm
 *   layers x = LN(x + dense(attention(x))); x = LN(x + dense(act(dense(x)))); pooler tanh(dense(h[CLS])) → classifier.
 * - DistilBERT (`DistilBertForSequenceClassification`): the same layer math under other names, no token types,
 *   LayerNorm eps fixed at 1e-12; head relu(pre_classifier(h[CLS])) → classifier.
 * Padding is excluded through the attention kernel's key mask, so a sequence's outputs do not depend on how much
 * padding its batch carries. Dropout (hidden and classifier) applies in training mode; attention-probability
 * dropout is not implemented (the fused kernel has none).
 */
import { add, arange, attention, crossEntropy, dropout, globalGenerator, narrow, relu, reshape, squeeze, tanh, zeros, type Tensor } from '../engine/index.js';
import { Embedding, LayerNorm, Linear, Module, ModuleList } from '../nn/index.js';
import type { ConfigReader } from './config.js';
import { parseActivation, type Activation } from './gpt2.js';
import type { ModelConfig, PretrainedModel, WeightSource } from './types.js';

/** Inputs of an encoder besides the token ids. */
export interface EncoderInputs {
  /** u8 [B, T]: 1 for real tokens, 0 for padding (default: all real). */
  attentionMask?: Tensor | null;
  /** i32 [B, T] segment ids (BERT only; default 0). */
  tokenTypeIds?: Tensor | null;
}

/** A model that maps a batch of sequences to one score per label. */
export interface SequenceClassifier extends PretrainedModel {
  readonly config: EncoderConfig;
  /** ids i32 [B, T] → logits f32 [B, numLabels]. */
  forward(ids: Tensor, opts?: EncoderInputs): Tensor<'f32'>;
  /** ids i32 [B, T] → the encoder's last hidden states f32 [B, T, hidden]. */
  encode(ids: Tensor, opts?: EncoderInputs): Tensor<'f32'>;
  /** Mean cross-entropy of the logits against `labels` i32 [B] (single-label classification). */
  loss(ids: Tensor, labels: Tensor, opts?: EncoderInputs): Tensor<'f32'>;
}

/** Whether `m` is a {@link SequenceClassifier}. */
export function isSequenceClassifier(m: PretrainedModel): m is SequenceClassifier {
  const c = m as unknown as Partial<SequenceClassifier>;
  return typeof c.encode === 'function' && typeof c.forward === 'function' && typeof c.config?.numLabels === 'number';
}

export interface EncoderConfig extends ModelConfig {
  numLabels: number;
  typeVocabSize: number;
  layerNormEps: number;
  activation: Activation;
  /** Dropout on embeddings and sublayer outputs, and before the classifier, when training. */
  hiddenDropout: number;
  classifierDropout: number;
}

/** Labels: `num_labels`, else the size of `id2label`, else HF's default of 2. */
function numLabelsOf(cfg: ConfigReader): number {
  const id2label = cfg.object('id2label');
  return cfg.int('num_labels', id2label ? Object.keys(id2label).length : 2);
}

/** The config every encoder shares, from the field names of one family. */
function encoderConfig(cfg: ConfigReader, f: { hidden: string; layers: string; heads: string; inner: string }): Omit<EncoderConfig, 'typeVocabSize' | 'layerNormEps' | 'activation' | 'hiddenDropout' | 'classifierDropout'> {
  const hiddenSize = cfg.int(f.hidden);
  const numHeads = cfg.int(f.heads);
  const headDim = hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new Error(`${cfg.source}: ${f.hidden} (${hiddenSize}) must be a multiple of ${f.heads} (${numHeads})`);
  return {
    modelType: cfg.string('model_type'),
    vocabSize: cfg.int('vocab_size'),
    hiddenSize,
    intermediateSize: cfg.int(f.inner),
    numLayers: cfg.int(f.layers),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    maxPositions: cfg.int('max_position_embeddings', 512),
    ...cfg.tokens(),
    tieWordEmbeddings: false,
    raw: cfg.raw,
    numLabels: numLabelsOf(cfg),
  };
}

/** The normalised config of a BERT config.json. */
export function parseBertConfig(cfg: ConfigReader): EncoderConfig {
  const posType = cfg.has('position_embedding_type') ? cfg.string('position_embedding_type') : 'absolute';
  if (posType !== 'absolute') throw new Error(`${cfg.source}: field "position_embedding_type" is "${posType}"; only "absolute" is supported`);
  const hiddenDropout = cfg.number('hidden_dropout_prob', 0.1);
  return {
    ...encoderConfig(cfg, { hidden: 'hidden_size', layers: 'num_hidden_layers', heads: 'num_attention_heads', inner: 'intermediate_size' }),
    typeVocabSize: cfg.int('type_vocab_size', 2),
    layerNormEps: cfg.number('layer_norm_eps', 1e-12),
    activation: parseActivation(cfg, 'hidden_act', 'gelu'),
    hiddenDropout,
    classifierDropout: cfg.number('classifier_dropout', hiddenDropout),
  };
}

/** The normalised config of a DistilBERT config.json. */
export function parseDistilBertConfig(cfg: ConfigReader): EncoderConfig {
  return {
    ...encoderConfig(cfg, { hidden: 'dim', layers: 'n_layers', heads: 'n_heads', inner: 'hidden_dim' }),
    typeVocabSize: 0,
    layerNormEps: 1e-12, // hard-coded in HF's DistilBERT
    activation: parseActivation(cfg, 'activation', 'gelu'),
    hiddenDropout: cfg.number('dropout', 0.1),
    classifierDropout: cfg.number('seq_classif_dropout', 0.2),
  };
}

function linearFrom(w: WeightSource, name: string, inF: number, outF: number): Linear {
  return new Linear(w.get(`${name}.weight`, [outF, inF], 'matrix'), w.get(`${name}.bias`, [outF], 'vector'));
}

function layerNormFrom(w: WeightSource, name: string, c: EncoderConfig): LayerNorm {
  return new LayerNorm(w.get(`${name}.weight`, [c.hiddenSize], 'vector'), w.get(`${name}.bias`, [c.hiddenSize], 'vector'), c.layerNormEps);
}

/** Dropout with this module's training flag. */
function drop(m: Module, x: Tensor, p: number): Tensor<'f32'> {
  return dropout(x, p, globalGenerator, m.training) as Tensor<'f32'>;
}

/** Multi-head bidirectional attention of x [B, T, C] over the unmasked keys; returns [B, T, C] (before the output projection). */
function selfAttention(x: Tensor, q: Linear, k: Linear, v: Linear, c: EncoderConfig, keyMask: Tensor | null): Tensor<'f32'> {
  const [B, T] = x.shape as [number, number];
  const heads = (l: Linear) => reshape(l.forward(x), [B, T, c.numHeads, c.headDim]);
  return reshape(attention(heads(q), heads(k), heads(v), { causal: false, keyMask }), [B, T, c.hiddenSize]);
}

/** Word + position (+ token-type, BERT) embeddings, LayerNorm-ed; the HF names of both families. */
export class EncoderEmbeddings extends Module {
  declare readonly word_embeddings: Embedding;
  declare readonly position_embeddings: Embedding;
  declare readonly token_type_embeddings?: Embedding;
  declare readonly LayerNorm: LayerNorm;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    const e = (name: string, rows: number) => new Embedding(w.get(`${prefix}.${name}.weight`, [rows, c.hiddenSize], 'embedding'));
    this.addModule('word_embeddings', e('word_embeddings', c.vocabSize));
    this.addModule('position_embeddings', e('position_embeddings', c.maxPositions));
    if (c.typeVocabSize > 0) this.addModule('token_type_embeddings', e('token_type_embeddings', c.typeVocabSize));
    this.addModule('LayerNorm', layerNormFrom(w, `${prefix}.LayerNorm`, c));
  }

  forward(ids: Tensor, tokenTypeIds: Tensor | null): Tensor<'f32'> {
    const T = ids.shape[1]!;
    if (T > this.c.maxPositions) throw new Error(`${this.c.modelType}: ${T} tokens exceed the ${this.c.maxPositions} learned positions (max_position_embeddings)`);
    // Absolute positions 0..T−1; the [T, C] rows broadcast over the batch.
    let x = add(this.word_embeddings.forward(ids), this.position_embeddings.forward(arange(0, T)));
    if (this.token_type_embeddings) x = add(x, this.token_type_embeddings.forward(tokenTypeIds ?? zeros(ids.shape, 'i32')));
    else if (tokenTypeIds) throw new Error(`${this.c.modelType}: the model has no token type embeddings, but tokenTypeIds were given`);
    return drop(this, this.LayerNorm.forward(x), this.c.hiddenDropout);
  }
}

/** dense → dropout → LayerNorm(· + residual): BERT's `BertSelfOutput` and `BertOutput`. */
export class BertDenseNorm extends Module {
  declare readonly dense: Linear;
  declare readonly LayerNorm: LayerNorm;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
    inF: number,
  ) {
    super();
    this.addModule('dense', linearFrom(w, `${prefix}.dense`, inF, c.hiddenSize));
    this.addModule('LayerNorm', layerNormFrom(w, `${prefix}.LayerNorm`, c));
  }

  forward(h: Tensor, residual: Tensor): Tensor<'f32'> {
    return this.LayerNorm.forward(add(drop(this, this.dense.forward(h), this.c.hiddenDropout), residual));
  }
}

export class BertSelfAttention extends Module {
  declare readonly query: Linear;
  declare readonly key: Linear;
  declare readonly value: Linear;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    for (const n of ['query', 'key', 'value']) this.addModule(n, linearFrom(w, `${prefix}.${n}`, c.hiddenSize, c.hiddenSize));
  }

  forward(x: Tensor, keyMask: Tensor | null): Tensor<'f32'> {
    return selfAttention(x, this.query, this.key, this.value, this.c, keyMask);
  }
}

export class BertAttention extends Module {
  declare readonly self: BertSelfAttention;
  declare readonly output: BertDenseNorm;

  constructor(c: EncoderConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('self', new BertSelfAttention(c, w, `${prefix}.self`));
    this.addModule('output', new BertDenseNorm(c, w, `${prefix}.output`, c.hiddenSize));
  }
}

export class BertIntermediate extends Module {
  declare readonly dense: Linear;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    this.addModule('dense', linearFrom(w, `${prefix}.dense`, c.hiddenSize, c.intermediateSize));
  }

  forward(x: Tensor): Tensor<'f32'> {
    return this.c.activation(this.dense.forward(x));
  }
}

export class BertLayer extends Module {
  declare readonly attention: BertAttention;
  declare readonly intermediate: BertIntermediate;
  declare readonly output: BertDenseNorm;

  constructor(c: EncoderConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('attention', new BertAttention(c, w, `${prefix}.attention`));
    this.addModule('intermediate', new BertIntermediate(c, w, `${prefix}.intermediate`));
    this.addModule('output', new BertDenseNorm(c, w, `${prefix}.output`, c.intermediateSize));
  }

  forward(x: Tensor, keyMask: Tensor | null): Tensor<'f32'> {
    const a = this.attention.output.forward(this.attention.self.forward(x, keyMask), x);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

export class BertEncoder extends Module {
  declare readonly layer: ModuleList<BertLayer>;

  constructor(c: EncoderConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('layer', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new BertLayer(c, w, `${prefix}.layer.${i}`))));
  }
}

export class BertPooler extends Module {
  declare readonly dense: Linear;

  constructor(c: EncoderConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('dense', linearFrom(w, `${prefix}.dense`, c.hiddenSize, c.hiddenSize));
  }

  /** tanh(dense(h[:, 0])): the [CLS] token's state. */
  forward(h: Tensor): Tensor<'f32'> {
    return tanh(this.dense.forward(firstToken(h)));
  }
}

export class BertModel extends Module {
  declare readonly embeddings: EncoderEmbeddings;
  declare readonly encoder: BertEncoder;
  declare readonly pooler: BertPooler;

  constructor(c: EncoderConfig, w: WeightSource) {
    super();
    this.addModule('embeddings', new EncoderEmbeddings(c, w, 'bert.embeddings'));
    this.addModule('encoder', new BertEncoder(c, w, 'bert.encoder'));
    this.addModule('pooler', new BertPooler(c, w, 'bert.pooler'));
  }
}

export class DistilBertAttention extends Module {
  declare readonly q_lin: Linear;
  declare readonly k_lin: Linear;
  declare readonly v_lin: Linear;
  declare readonly out_lin: Linear;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    for (const n of ['q_lin', 'k_lin', 'v_lin', 'out_lin']) this.addModule(n, linearFrom(w, `${prefix}.${n}`, c.hiddenSize, c.hiddenSize));
  }

  forward(x: Tensor, keyMask: Tensor | null): Tensor<'f32'> {
    return this.out_lin.forward(selfAttention(x, this.q_lin, this.k_lin, this.v_lin, this.c, keyMask));
  }
}

export class DistilBertFFN extends Module {
  declare readonly lin1: Linear;
  declare readonly lin2: Linear;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    this.addModule('lin1', linearFrom(w, `${prefix}.lin1`, c.hiddenSize, c.intermediateSize));
    this.addModule('lin2', linearFrom(w, `${prefix}.lin2`, c.intermediateSize, c.hiddenSize));
  }

  forward(x: Tensor): Tensor<'f32'> {
    return this.lin2.forward(this.c.activation(this.lin1.forward(x)));
  }
}

export class DistilBertBlock extends Module {
  declare readonly attention: DistilBertAttention;
  declare readonly sa_layer_norm: LayerNorm;
  declare readonly ffn: DistilBertFFN;
  declare readonly output_layer_norm: LayerNorm;

  constructor(
    private readonly c: EncoderConfig,
    w: WeightSource,
    prefix: string,
  ) {
    super();
    this.addModule('attention', new DistilBertAttention(c, w, `${prefix}.attention`));
    this.addModule('sa_layer_norm', layerNormFrom(w, `${prefix}.sa_layer_norm`, c));
    this.addModule('ffn', new DistilBertFFN(c, w, `${prefix}.ffn`));
    this.addModule('output_layer_norm', layerNormFrom(w, `${prefix}.output_layer_norm`, c));
  }

  forward(x: Tensor, keyMask: Tensor | null): Tensor<'f32'> {
    const p = this.c.hiddenDropout;
    const a = this.sa_layer_norm.forward(add(drop(this, this.attention.forward(x, keyMask), p), x));
    return this.output_layer_norm.forward(add(drop(this, this.ffn.forward(a), p), a));
  }
}

export class DistilBertTransformer extends Module {
  declare readonly layer: ModuleList<DistilBertBlock>;

  constructor(c: EncoderConfig, w: WeightSource, prefix: string) {
    super();
    this.addModule('layer', new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new DistilBertBlock(c, w, `${prefix}.layer.${i}`))));
  }
}

export class DistilBertModel extends Module {
  declare readonly embeddings: EncoderEmbeddings;
  declare readonly transformer: DistilBertTransformer;

  constructor(c: EncoderConfig, w: WeightSource) {
    super();
    this.addModule('embeddings', new EncoderEmbeddings(c, w, 'distilbert.embeddings'));
    this.addModule('transformer', new DistilBertTransformer(c, w, 'distilbert.transformer'));
  }
}

/** h[:, 0] of h [B, T, C] → [B, C]. */
function firstToken(h: Tensor): Tensor {
  return squeeze(narrow(h, 1, 0, 1), 1);
}

/** Checks the inputs and turns the padding mask into the attention kernel's key mask. */
function checkInputs(name: string, ids: Tensor, opts: EncoderInputs): Tensor | null {
  if (ids.dtype !== 'i32' || ids.rank !== 2) throw new Error(`${name}: ids must be i32 [B, T], got ${ids.describe()}`);
  const shape = ids.shape.join(', ');
  const mask = opts.attentionMask ?? null;
  if (mask && (mask.dtype !== 'u8' || mask.shape.join(', ') !== shape)) throw new Error(`${name}: attentionMask must be u8 [${shape}], got ${mask.describe()}`);
  const types = opts.tokenTypeIds ?? null;
  if (types && (types.dtype !== 'i32' || types.shape.join(', ') !== shape)) throw new Error(`${name}: tokenTypeIds must be i32 [${shape}], got ${types.describe()}`);
  return mask;
}

/** The head both classifiers share: encode, take [CLS], a family-specific projection, dropout, classifier. */
abstract class EncoderClassifier extends Module implements SequenceClassifier {
  declare readonly classifier: Linear;

  constructor(readonly config: EncoderConfig) {
    super();
  }

  abstract encode(ids: Tensor, opts?: EncoderInputs): Tensor<'f32'>;
  /** h[:, 0] [B, C] → the classifier's input. */
  protected abstract pool(hidden: Tensor): Tensor<'f32'>;

  forward(ids: Tensor, opts: EncoderInputs = {}): Tensor<'f32'> {
    return this.classifier.forward(drop(this, this.pool(this.encode(ids, opts)), this.config.classifierDropout));
  }

  loss(ids: Tensor, labels: Tensor, opts: EncoderInputs = {}): Tensor<'f32'> {
    return crossEntropy(this.forward(ids, opts), labels, { ignoreIndex: -100 });
  }
}

/** HF `BertForSequenceClassification`. */
export class BertForSequenceClassification extends EncoderClassifier {
  declare readonly bert: BertModel;

  constructor(config: EncoderConfig, w: WeightSource) {
    super(config);
    this.addModule('bert', new BertModel(config, w));
    this.addModule('classifier', linearFrom(w, 'classifier', config.hiddenSize, config.numLabels));
  }

  encode(ids: Tensor, opts: EncoderInputs = {}): Tensor<'f32'> {
    const keyMask = checkInputs('BertForSequenceClassification', ids, opts);
    let x = this.bert.embeddings.forward(ids, opts.tokenTypeIds ?? null);
    for (const layer of this.bert.encoder.layer.items) x = layer.forward(x, keyMask);
    return x;
  }

  protected pool(hidden: Tensor): Tensor<'f32'> {
    return this.bert.pooler.forward(hidden);
  }
}

/** HF `DistilBertForSequenceClassification`. */
export class DistilBertForSequenceClassification extends EncoderClassifier {
  declare readonly distilbert: DistilBertModel;
  declare readonly pre_classifier: Linear;

  constructor(config: EncoderConfig, w: WeightSource) {
    super(config);
    this.addModule('distilbert', new DistilBertModel(config, w));
    this.addModule('pre_classifier', linearFrom(w, 'pre_classifier', config.hiddenSize, config.hiddenSize));
    this.addModule('classifier', linearFrom(w, 'classifier', config.hiddenSize, config.numLabels));
  }

  encode(ids: Tensor, opts: EncoderInputs = {}): Tensor<'f32'> {
    const keyMask = checkInputs('DistilBertForSequenceClassification', ids, opts);
    let x = this.distilbert.embeddings.forward(ids, opts.tokenTypeIds ?? null);
    for (const layer of this.distilbert.transformer.layer.items) x = layer.forward(x, keyMask);
    return x;
  }

  protected pool(hidden: Tensor): Tensor<'f32'> {
    return relu(this.pre_classifier.forward(firstToken(hidden)));
  }
}

/** The registry entries: config.json → a BERT or DistilBERT sequence classifier. */
export const bertArchitecture = {
  modelTypes: ['bert'],
  basePrefix: 'bert',
  build: (cfg: ConfigReader, w: WeightSource) => new BertForSequenceClassification(parseBertConfig(cfg), w),
  // The position-id buffer older checkpoints saved; pretraining heads a classification model does not use.
  ignoreUnexpected: [/^bert\.embeddings\.position_ids$/, /^cls\./],
};

export const distilBertArchitecture = {
  modelTypes: ['distilbert'],
  basePrefix: 'distilbert',
  build: (cfg: ConfigReader, w: WeightSource) => new DistilBertForSequenceClassification(parseDistilBertConfig(cfg), w),
  // The masked-LM head of a pretraining checkpoint.
  ignoreUnexpected: [/^vocab_(transform|projector|layer_norm)\./],
};
