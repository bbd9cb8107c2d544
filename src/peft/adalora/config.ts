/**
 * `AdaLoraConfig`: HF PEFT's field names and defaults (PEFT 0.20 src/peft/tuners/adalora/config.py — LoraConfig's
 * fields plus the rank-budget schedule). `r` is unused (PEFT warns too); `init_r` is each module's starting rank.
 * `rank_pattern` is AdaLoRA's own: `{"<module path>.lora_E": [kept, …]}` (one boolean per initial rank), written
 * by the rank allocator and used on load to create the pruned ranks. IncreLoRA shares the fields and their checks
 * ({@link SvdScheduleConfig}, {@link parseSvdScheduleConfig}).
 */
import { BASE_CHECKS, is, parseConfigFields, type ConfigCheck, type PeftConfigBase } from '../config.js';
import { LORA_DEFAULTS } from '../lora/config.js';
import { checkTargets, probability } from '../common/select-config.js';

/** The fields of the SVD-form methods with a rank schedule (AdaLoRA, IncreLoRA): LoRA's plus the schedule. */
export interface SvdScheduleConfig extends PeftConfigBase {
  target_r: number;
  init_r: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  beta1: number;
  beta2: number;
  orth_reg_weight: number;
  total_step: number;
  rank_pattern: Record<string, boolean[]> | null;
  lora_alpha: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  init_lora_weights: boolean;
  [field: string]: unknown;
}

export interface AdaLoraConfig extends SvdScheduleConfig {
  peft_type: 'ADALORA';
}

export const ADALORA_DEFAULTS = {
  ...LORA_DEFAULTS,
  target_r: 8,
  init_r: 12,
  tinit: 0,
  tfinal: 0,
  deltaT: 1,
  beta1: 0.85,
  beta2: 0.85,
  orth_reg_weight: 0.5,
  total_step: null,
  rank_pattern: null,
} as const;

const open01 = (v: unknown) => (typeof v === 'number' && v > 0 && v < 1 ? null : 'must be a number in (0, 1)');

export const ADALORA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  lora_alpha: is.num,
  lora_dropout: probability,
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'lora_only'),
  init_lora_weights: is.bool,
  target_r: is.int(1),
  init_r: is.int(1),
  tinit: is.int(0),
  tfinal: is.int(0),
  deltaT: is.int(1),
  beta1: open01,
  beta2: open01,
  orth_reg_weight: (v: unknown) => (typeof v === 'number' && v >= 0 ? null : 'must be a number ≥ 0'),
  total_step: is.nullable(is.int(1)),
  rank_pattern: (v: unknown) =>
    v === null || (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => Array.isArray(x) && x.every((b) => typeof b === 'boolean')))
      ? null
      : 'must be null or an object of boolean lists',
};

/** LoRA features AdaLoRA (in PEFT or in peftjs) and IncreLoRA do not combine with. */
const REFUSED: Record<string, (v: unknown) => boolean> = {
  use_dora: (v) => v === true,
  use_rslora: (v) => v === true,
  use_qalora: (v) => v === true,
  lora_bias: (v) => v === true,
  loftq_config: (v) => !!v && typeof v === 'object' && Object.keys(v).length > 0,
  layer_replication: (v) => v != null,
  trainable_token_indices: (v) => v != null,
};

/**
 * Parses a config of an SVD-form scheduled method (`peftType`, named `method` in errors) with `defaults` and
 * `checks`, and applies the checks AdaLoRA and IncreLoRA share (PEFT's post-init checks): refused LoRA features,
 * a set total_step, a schedule that leaves a budgeting phase, and the module selection.
 */
export function parseSvdScheduleConfig<C extends SvdScheduleConfig>(
  peftType: string,
  method: string,
  raw: Record<string, unknown>,
  defaults: Record<string, unknown>,
  checks: Record<string, ConfigCheck>,
  where: string,
): C {
  const c = parseConfigFields<C>(peftType, raw, defaults, checks, where);
  for (const [field, refused] of Object.entries(REFUSED))
    if (refused(c[field])) throw new Error(`${where}: ${field}=${JSON.stringify(c[field])} is not supported with ${method}`);
  if (c.total_step === null) throw new Error(`${where}: ${method} needs total_step (the number of optimizer steps), got null`);
  if (c.tinit >= c.total_step - c.tfinal)
    throw new Error(`${where}: tinit (${c.tinit}) must be < total_step − tfinal (${c.total_step} − ${c.tfinal}): no budgeting phase is left`);
  checkTargets(c, where);
  return c;
}

/** Parses and validates an AdaLoRA config (PEFT's post-init checks included). */
export function parseAdaLoraConfig(raw: Record<string, unknown>, where = 'AdaLoraConfig'): AdaLoraConfig {
  const c = parseSvdScheduleConfig<AdaLoraConfig>('ADALORA', 'AdaLoRA', raw, ADALORA_DEFAULTS, ADALORA_CHECKS, where);
  if (c.target_r > c.init_r) throw new Error(`${where}: target_r (${c.target_r}) exceeds init_r (${c.init_r})`);
  return c;
}
