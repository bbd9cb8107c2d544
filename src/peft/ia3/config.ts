/** `IA3Config`: HF PEFT's field names and defaults (PEFT 5d602fd, src/peft/tuners/ia3/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type ModuleSelector, type PeftConfigBase } from '../config.js';

export interface Ia3Config extends PeftConfigBase {
  peft_type: 'IA3';
  /** Modules whose input (not output) is scaled: l [1, in] multiplies x before the layer (the FFN intermediate). */
  feedforward_modules: ModuleSelector;
  fan_in_fan_out: boolean;
  /** true: vectors start at 1 (the adapter is the identity); false: N(0, 1). */
  init_ia3_weights: boolean;
}

export const IA3_DEFAULTS = {
  target_modules: null,
  exclude_modules: null,
  feedforward_modules: null,
  fan_in_fan_out: false,
  modules_to_save: null,
  init_ia3_weights: true,
} as const;

/** PEFT's defaults for a Llama-family model when `target_modules` / `feedforward_modules` are null. */
export const IA3_LLAMA_TARGETS = { target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] };

const IA3_CHECKS = { ...BASE_CHECKS, feedforward_modules: is.nullable(is.strOrList), fan_in_fan_out: is.bool, init_ia3_weights: is.bool };

/** Parses an (IA)³ config; null target / feedforward modules take PEFT's Llama defaults. */
export function parseIa3Config(raw: Record<string, unknown>, where = 'IA3Config'): Ia3Config {
  const c = parseConfigFields<Ia3Config>('IA3', raw, IA3_DEFAULTS, IA3_CHECKS, where);
  c.target_modules ??= [...IA3_LLAMA_TARGETS.target_modules];
  c.feedforward_modules ??= [...IA3_LLAMA_TARGETS.feedforward_modules];
  // PEFT's __post_init__: every feedforward module must be a target.
  const list = (s: ModuleSelector) => (Array.isArray(s) ? s : null);
  const targets = list(c.target_modules);
  const ff = list(c.feedforward_modules);
  if (targets && ff && !ff.every((f) => targets.includes(f)))
    throw new Error(`${where}: feedforward_modules ${JSON.stringify(ff)} must be a subset of target_modules ${JSON.stringify(targets)}`);
  return c;
}

/** Whether module `key` is a feedforward module (PEFT: regex full match, or a name suffix). */
export function isFeedforward(config: Ia3Config, key: string): boolean {
  const ff = config.feedforward_modules;
  if (typeof ff === 'string') return new RegExp(`^(?:${ff})$`).test(key);
  return (ff ?? []).some((f) => key.endsWith(f));
}
