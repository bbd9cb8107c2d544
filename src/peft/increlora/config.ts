/**
 * `IncreLoraConfig` (`peft_type` "INCRELORA"; HF PEFT has no IncreLoRA): AdaLoRA's field names where they mean the
 * same (LoRA's fields plus `init_r`, `target_r`, `tinit`, `tfinal`, `deltaT`, `beta1`, `beta2`, `orth_reg_weight`,
 * `total_step`, `rank_pattern`) and `max_r`, the most components one module can reach. Each module starts with
 * `init_r` active components; the budget grows to `target_r × #modules`. `rank_pattern`
 * (`{"<module path>.lora_E": [active, …]}`, one boolean per allocated component, active ones first) is written by
 * the allocator and gives a loaded adapter its ranks.
 */
import { is } from '../config.js';
import { ADALORA_CHECKS, ADALORA_DEFAULTS, parseSvdScheduleConfig, type SvdScheduleConfig } from '../adalora/index.js';

export interface IncreLoraConfig extends SvdScheduleConfig {
  peft_type: 'INCRELORA';
  max_r: number;
}

export const INCRELORA_DEFAULTS = { ...ADALORA_DEFAULTS, init_r: 2, target_r: 8, max_r: 16 } as const;

/** Parses and validates an IncreLoRA config: AdaLoRA's checks, and init_r ≤ target_r ≤ max_r. */
export function parseIncreLoraConfig(raw: Record<string, unknown>, where = 'IncreLoraConfig'): IncreLoraConfig {
  const checks = { ...ADALORA_CHECKS, max_r: is.int(1) };
  const c = parseSvdScheduleConfig<IncreLoraConfig>('INCRELORA', 'IncreLoRA', raw, INCRELORA_DEFAULTS, checks, where);
  if (c.init_r > c.target_r) throw new Error(`${where}: init_r (${c.init_r}) exceeds target_r (${c.target_r}): ranks only grow`);
  if (c.target_r > c.max_r) throw new Error(`${where}: target_r (${c.target_r}) exceeds max_r (${c.max_r}): the budget could not be reached`);
  return c;
}
