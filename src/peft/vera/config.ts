/** `VeraConfig`: HF PEFT's field names and defaults (PEFT 0.20 src/peft/tuners/vera/config.py). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, probability } from '../common/select-config.js';

export interface VeraConfig extends PeftConfigBase {
  peft_type: 'VERA';
  /** Rank of the shared random projections A [r, in] and B [out, r]. */
  r: number;
  /** Seed the shared projections are regenerated from. */
  projection_prng_key: number;
  /** PEFT: also store the projections in the file. See the VeRA docs for what peftjs does with it. */
  save_projection: boolean;
  vera_dropout: number;
  /** Initial value of every entry of λ_d. */
  d_initial: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'vera_only';
  /** true: λ_b = 0 (a no-op adapter), λ_d = d_initial; false: λ_b = 1, λ_d ~ N(0, 1). */
  init_weights: boolean;
  [field: string]: unknown;
}

export const VERA_DEFAULTS = {
  r: 256,
  target_modules: null,
  projection_prng_key: 0,
  save_projection: true,
  vera_dropout: 0.0,
  d_initial: 0.1,
  fan_in_fan_out: false,
  bias: 'none',
  modules_to_save: null,
  init_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
} as const;

const VERA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  projection_prng_key: is.int(0),
  save_projection: is.bool,
  vera_dropout: probability,
  d_initial: is.num,
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'vera_only'),
  init_weights: is.bool,
};

/** Parses and validates a VeRA config. */
export function parseVeraConfig(raw: Record<string, unknown>, where = 'VeraConfig'): VeraConfig {
  const c = parseConfigFields<VeraConfig>('VERA', raw, VERA_DEFAULTS, VERA_CHECKS, where);
  // PEFT's VeraConfig has no exclude_modules: it stays absent (target matching reads it as unset).
  checkTargets(c, where);
  return c;
}
