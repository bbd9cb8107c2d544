/**
 * The embedded default base model: where it lives in the repository, its architecture (a tiny Llama in the
 * Hugging Face layout) and the recipe it was pretrained with (see pretrain.ts and scripts/make-default-model.ts).
 */
import { fileURLToPath } from 'node:url';
import { BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, VOCAB_SIZE } from './tokenizer.js';

/** `assets/default-model/` of this checkout. */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../assets/default-model', import.meta.url));

/** Longest sequence the model handles (every quickstart prompt + answer fits in well under half). */
export const MAX_POSITIONS = 128;

/** config.json of the default model: Llama, 4 layers, width 128, 4 query / 2 key-value heads, tied embeddings. */
export function defaultModelConfig(): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: VOCAB_SIZE,
    hidden_size: 128,
    intermediate_size: 384,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: MAX_POSITIONS,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: true,
    initializer_range: 0.02,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}

/** The pretraining recipe (the defaults of scripts/make-default-model.ts). */
export interface PretrainRecipe {
  /** Optimizer steps. */
  steps: number;
  /** Rows of `seqLen` tokens per step. */
  batchSize: number;
  seqLen: number;
  /** Peak learning rate (linear warmup, cosine decay to 10 %). */
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  /** Corpus documents generated (one line each). */
  documents: number;
  /** Seed of the corpus and of the initial weights. */
  seed: number;
}

export const DEFAULT_RECIPE: PretrainRecipe = {
  steps: 1500,
  batchSize: 32,
  seqLen: 64,
  lr: 3e-3,
  warmupSteps: 100,
  weightDecay: 0.01,
  documents: 120_000,
  seed: 1234,
};

export { BOS_TOKEN, EOS_TOKEN, PAD_TOKEN };
