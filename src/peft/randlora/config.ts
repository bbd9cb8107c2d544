/** `RandLoraConfig`: HF PEFT's field names and defaults (PEFT 0.20 src/peft/tuners/randlora/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, probability } from '../common/select-config.js';

export interface RandLoraConfig extends PeftConfigBase {
  peft_type: 'RANDLORA';
  /** Rank of each random basis; ⌈min(in, out)/r⌉ bases make the update full-rank. */
  r: number;
  projection_prng_key: number;
  /** PEFT: also store the bases in the file. See the RandLoRA docs for what peftjs does with it. */
  save_projection: boolean;
  /** Ternary sparse bases (PEFT); not supported by peftjs. */
  sparse: boolean;
  very_sparse: boolean;
  randlora_dropout: number;
  fan_in_fan_out: boolean;
  /** Scaling randlora_alpha / r. */
  randlora_alpha: number;
  bias: 'none' | 'all' | 'randlora_only';
  /** true: Λ = 0 (a no-op adapter), Γ = 1/max(shape); false: Λ ~ N(0, 1), Γ = 1/max(in, out). */
  init_weights: boolean;
  [field: string]: unknown;
}

export const RANDLORA_DEFAULTS = {
  r: 32,
  target_modules: null,
  projection_prng_key: 0,
  save_projection: true,
  sparse: false,
  very_sparse: false,
  randlora_dropout: 0.0,
  fan_in_fan_out: false,
  randlora_alpha: 640,
  bias: 'none',
  modules_to_save: null,
  init_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
} as const;

const RANDLORA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  projection_prng_key: is.int(0),
  save_projection: is.bool,
  sparse: is.bool,
  very_sparse: is.bool,
  randlora_dropout: probability,
  fan_in_fan_out: is.bool,
  randlora_alpha: is.num,
  bias: is.oneOf('none', 'all', 'randlora_only'),
  init_weights: is.bool,
};

/** Parses and validates a RandLoRA config. */
export function parseRandLoraConfig(raw: Record<string, unknown>, where = 'RandLoraConfig'): RandLoraConfig {
  const c = parseConfigFields<RandLoraConfig>('RANDLORA', raw, RANDLORA_DEFAULTS, RANDLORA_CHECKS, where);
  if (c.sparse || c.very_sparse) throw new Error(`${where}: sparse / very_sparse bases are not supported by peftjs`);
  // PEFT's RandLoraConfig has no exclude_modules: it stays absent (target matching reads it as unset).
  checkTargets(c, where);
  return c;
}
