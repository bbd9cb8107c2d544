/** `PromptTuningConfig`: HF PEFT's field names and defaults (PEFT 5d602fd, src/peft/tuners/prompt_tuning/config.py, src/peft/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';

/** PeftConfig's prompt-learning fields (filled from the model at injection, as PEFT's `_prepare_prompt_learning_config`). */
export interface PromptLearningFields {
  num_virtual_tokens: number;
  token_dim: number | null;
  num_transformer_submodules: number | null;
  num_attention_heads: number | null;
  num_layers: number | null;
}

export const PROMPT_LEARNING_DEFAULTS = {
  num_virtual_tokens: null,
  token_dim: null,
  num_transformer_submodules: null,
  num_attention_heads: null,
  num_layers: null,
  modules_to_save: null,
} as const;

export const PROMPT_LEARNING_CHECKS = {
  task_type: BASE_CHECKS.task_type!,
  base_model_name_or_path: BASE_CHECKS.base_model_name_or_path!,
  revision: BASE_CHECKS.revision!,
  inference_mode: BASE_CHECKS.inference_mode!,
  modules_to_save: BASE_CHECKS.modules_to_save!,
  num_virtual_tokens: is.int(1),
  token_dim: is.nullable(is.int(1)),
  num_transformer_submodules: is.nullable(is.int(1)),
  num_attention_heads: is.nullable(is.int(1)),
  num_layers: is.nullable(is.int(1)),
};

export interface PromptTuningConfig extends PeftConfigBase, PromptLearningFields {
  peft_type: 'PROMPT_TUNING';
  /** RANDOM: N(0, 1) rows (torch Embedding's init); TEXT: the embeddings of `prompt_tuning_init_text`'s tokens, repeated / cut to P; SAMPLE_VOCAB: rows of random vocabulary ids. */
  prompt_tuning_init: 'RANDOM' | 'TEXT' | 'SAMPLE_VOCAB';
  prompt_tuning_init_text: string | null;
  /** The tokenizer folder for TEXT init. */
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: Record<string, unknown> | null;
}

export const PROMPT_TUNING_DEFAULTS = {
  ...PROMPT_LEARNING_DEFAULTS,
  prompt_tuning_init: 'RANDOM',
  prompt_tuning_init_text: null,
  tokenizer_name_or_path: null,
  tokenizer_kwargs: null,
} as const;

export function parsePromptTuningConfig(raw: Record<string, unknown>, where = 'PromptTuningConfig'): PromptTuningConfig {
  const c = parseConfigFields<PromptTuningConfig>('PROMPT_TUNING', raw, PROMPT_TUNING_DEFAULTS, {
    ...PROMPT_LEARNING_CHECKS,
    prompt_tuning_init: is.oneOf('RANDOM', 'TEXT', 'SAMPLE_VOCAB'),
    prompt_tuning_init_text: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
    tokenizer_name_or_path: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
  }, where);
  if (c.num_virtual_tokens === null) throw new Error(`${where}: num_virtual_tokens must be set`);
  // PEFT's __post_init__ checks.
  if (c.prompt_tuning_init === 'TEXT' && !c.tokenizer_name_or_path)
    throw new Error(`${where}: when prompt_tuning_init is "TEXT", tokenizer_name_or_path can't be null`);
  if (c.prompt_tuning_init === 'TEXT' && !c.prompt_tuning_init_text)
    throw new Error(`${where}: when prompt_tuning_init is "TEXT", prompt_tuning_init_text can't be null`);
  return c;
}
