/**
 * `NolaConfig` (peftjs; PEFT has no NOLA): LoRA's conventions — `r`, `nola_alpha` (scaling α/r), `nola_dropout`,
 * the module-selection fields — plus the basis sizes and the seed the bases are regenerated from.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, probability, TARGET_DEFAULTS } from '../common/select-config.js';

export interface NolaConfig extends PeftConfigBase {
  peft_type: 'NOLA';
  /** Rank of A [r, in] and B [out, r]. */
  r: number;
  /** Number of random bases A is a combination of (trainable coefficients per layer). */
  num_basis_A: number;
  /** Number of random bases B is a combination of. */
  num_basis_B: number;
  /** Scaling α/r, as LoRA's `lora_alpha`. */
  nola_alpha: number;
  nola_dropout: number;
  /** Seed the bases are regenerated from (each layer's bases also depend on its module name). */
  projection_prng_key: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'nola_only';
  /** true: B's coefficients start at zero (a no-op adapter); false: both random. */
  init_weights: boolean;
  [field: string]: unknown;
}

export const NOLA_DEFAULTS = {
  ...TARGET_DEFAULTS,
  r: 8,
  num_basis_A: 64,
  num_basis_B: 64,
  nola_alpha: 8,
  nola_dropout: 0.0,
  projection_prng_key: 0,
  fan_in_fan_out: false,
  bias: 'none',
  init_weights: true,
} as const;

const NOLA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  num_basis_A: is.int(1),
  num_basis_B: is.int(1),
  nola_alpha: is.num,
  nola_dropout: probability,
  projection_prng_key: is.int(0),
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'nola_only'),
  init_weights: is.bool,
};

/** Parses and validates a NOLA config. */
export function parseNolaConfig(raw: Record<string, unknown>, where = 'NolaConfig'): NolaConfig {
  const c = parseConfigFields<NolaConfig>('NOLA', raw, NOLA_DEFAULTS, NOLA_CHECKS, where);
  checkTargets(c, where);
  return c;
}
