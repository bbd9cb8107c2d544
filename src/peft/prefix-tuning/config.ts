/** `PrefixTuningConfig`: HF PEFT's field names and defaults (PEFT 5d602fd, src/peft/tuners/prefix_tuning/config.py). */
import { is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { PROMPT_LEARNING_CHECKS, PROMPT_LEARNING_DEFAULTS, type PromptLearningFields } from '../prompt-tuning/config.js';

export interface PrefixTuningConfig extends PeftConfigBase, PromptLearningFields {
  peft_type: 'PREFIX_TUNING';
  /** null: N(0, 1) (torch Embedding's init); "zero": the prefix starts at zero (projection: the last Linear). */
  init_weights: 'zero' | null;
  /** Hidden width of the projection MLP (default: token_dim). */
  encoder_hidden_size: number | null;
  /** Train P embeddings [P, token_dim] through Linear–tanh–Linear to the prefix (Li & Liang's reparameterisation). */
  prefix_projection: boolean;
}

export const PREFIX_TUNING_DEFAULTS = { ...PROMPT_LEARNING_DEFAULTS, init_weights: null, encoder_hidden_size: null, prefix_projection: false } as const;

export function parsePrefixTuningConfig(raw: Record<string, unknown>, where = 'PrefixTuningConfig'): PrefixTuningConfig {
  const c = parseConfigFields<PrefixTuningConfig>('PREFIX_TUNING', raw, PREFIX_TUNING_DEFAULTS, {
    ...PROMPT_LEARNING_CHECKS,
    init_weights: is.nullable(is.oneOf('zero')),
    encoder_hidden_size: is.nullable(is.int(1)),
    prefix_projection: is.bool,
  }, where);
  if (c.num_virtual_tokens === null) throw new Error(`${where}: num_virtual_tokens must be set`);
  return c;
}
