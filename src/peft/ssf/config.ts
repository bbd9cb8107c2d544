/**
 * `SSFConfig` (not in HF PEFT; named after PEFT's conventions): scale-and-shift vectors on the targeted Linear
 * layers' outputs.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';

export interface SsfConfig extends PeftConfigBase {
  peft_type: 'SSF';
  /** true: γ = 1, β = 0 (the identity, PEFT's `init_*_weights` convention); false: the paper's γ ~ N(1, 0.02²), β ~ N(0, 0.02²). */
  init_ssf_weights: boolean;
}

export const SSF_DEFAULTS = {
  target_modules: 'all-linear',
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
  init_ssf_weights: true,
} as const;

export function parseSsfConfig(raw: Record<string, unknown>, where = 'SSFConfig'): SsfConfig {
  const c = parseConfigFields<SsfConfig>('SSF', raw, SSF_DEFAULTS, { ...BASE_CHECKS, init_ssf_weights: is.bool }, where);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set (a list of module names, a regex, or "all-linear")`);
  return c;
}
