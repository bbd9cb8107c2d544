/** `LNTuningConfig`: HF PEFT's field names and defaults (PEFT 5d602fd, src/peft/tuners/ln_tuning/config.py). */
import { BASE_CHECKS, parseConfigFields, type PeftConfigBase } from '../config.js';

export interface LnTuningConfig extends PeftConfigBase {
  peft_type: 'LN_TUNING';
}

export const LN_TUNING_DEFAULTS = { target_modules: null, exclude_modules: null, modules_to_save: null } as const;

/** PEFT's default targets for Llama-family models (TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING). */
export const LN_TUNING_LLAMA_TARGETS = ['input_layernorm', 'post_attention_layernorm', 'norm'];

/** Parses a LayerNorm-tuning config; null `target_modules` takes PEFT's Llama default. */
export function parseLnTuningConfig(raw: Record<string, unknown>, where = 'LNTuningConfig'): LnTuningConfig {
  const c = parseConfigFields<LnTuningConfig>('LN_TUNING', raw, LN_TUNING_DEFAULTS, BASE_CHECKS, where);
  c.target_modules ??= [...LN_TUNING_LLAMA_TARGETS];
  return c;
}
