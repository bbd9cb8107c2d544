/**
 * `LolduConfig` (peftjs; PEFT has no LoLDU): the rank r of the LDU factors kept, and LoRA's module-selection and
 * bias conventions.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, TARGET_DEFAULTS } from '../common/select-config.js';

export interface LolduConfig extends PeftConfigBase {
  peft_type: 'LOLDU';
  /** Leading LDU components kept: ΔW lives in their span (r + 1 trainable numbers per layer). */
  r: number;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'loldu_only';
  [field: string]: unknown;
}

export const LOLDU_DEFAULTS = { ...TARGET_DEFAULTS, r: 8, fan_in_fan_out: false, bias: 'none' } as const;

const LOLDU_CHECKS = { ...BASE_CHECKS, r: is.int(1), fan_in_fan_out: is.bool, bias: is.oneOf('none', 'all', 'loldu_only') };

/** Parses and validates a LoLDU config. */
export function parseLolduConfig(raw: Record<string, unknown>, where = 'LolduConfig'): LolduConfig {
  const c = parseConfigFields<LolduConfig>('LOLDU', raw, LOLDU_DEFAULTS, LOLDU_CHECKS, where);
  checkTargets(c, where);
  return c;
}
