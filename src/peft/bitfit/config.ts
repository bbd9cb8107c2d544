/** `BitFitConfig` (not in HF PEFT; named after PEFT's conventions): which modules' biases train. */
import { BASE_CHECKS, parseConfigFields, type PeftConfigBase } from '../config.js';

export interface BitFitConfig extends PeftConfigBase {
  peft_type: 'BITFIT';
}

/** `target_modules` null: every module that has a bias (the paper trains all of them). */
export const BITFIT_DEFAULTS = {
  target_modules: null,
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
} as const;

export function parseBitFitConfig(raw: Record<string, unknown>, where = 'BitFitConfig'): BitFitConfig {
  return parseConfigFields<BitFitConfig>('BITFIT', raw, BITFIT_DEFAULTS, BASE_CHECKS, where);
}
