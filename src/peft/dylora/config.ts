/**
 * `DyloraConfig` (peftjs; PEFT has no DyLoRA): LoRA's fields (`r` is the largest rank trained), plus the smallest
 * rank sampled and the update mode.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, probability, TARGET_DEFAULTS } from '../common/select-config.js';

export interface DyloraConfig extends PeftConfigBase {
  peft_type: 'DYLORA';
  /** The largest rank; every prefix 1..r of the components is a usable adapter. */
  r: number;
  /** Smallest rank sampled during training. */
  min_r: number;
  lora_alpha: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  /** true: a step with sampled rank b trains only component b (the paper's frozen mode); false: components 1..b. */
  frozen_lower: boolean;
  /** Rank used outside training (and by merge); null: r. */
  eval_r: number | null;
  [field: string]: unknown;
}

export const DYLORA_DEFAULTS = {
  ...TARGET_DEFAULTS,
  r: 8,
  min_r: 1,
  lora_alpha: 8,
  lora_dropout: 0.0,
  fan_in_fan_out: false,
  bias: 'none',
  frozen_lower: false,
  eval_r: null,
} as const;

const DYLORA_CHECKS = {
  ...BASE_CHECKS,
  r: is.int(1),
  min_r: is.int(1),
  lora_alpha: is.num,
  lora_dropout: probability,
  fan_in_fan_out: is.bool,
  bias: is.oneOf('none', 'all', 'lora_only'),
  frozen_lower: is.bool,
  eval_r: is.nullable(is.int(1)),
};

/** Parses and validates a DyLoRA config. */
export function parseDyloraConfig(raw: Record<string, unknown>, where = 'DyloraConfig'): DyloraConfig {
  const c = parseConfigFields<DyloraConfig>('DYLORA', raw, DYLORA_DEFAULTS, DYLORA_CHECKS, where);
  if (c.min_r > c.r) throw new Error(`${where}: min_r (${c.min_r}) exceeds r (${c.r})`);
  if (c.eval_r !== null && c.eval_r > c.r) throw new Error(`${where}: eval_r (${c.eval_r}) exceeds r (${c.r})`);
  checkTargets(c, where);
  return c;
}
