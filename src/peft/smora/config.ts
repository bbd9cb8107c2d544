/** `SmoraConfig` (peft_type "SMORA"; not a PEFT method: LoRA's names plus the router's). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, TARGET_DEFAULTS } from '../common/select-config.js';

export interface SmoraConfig extends PeftConfigBase {
  peft_type: 'SMORA';
  /** Rank = number of single-rank experts. */
  r: number;
  lora_alpha: number;
  /** Ranks active per token. */
  top_k: number;
  /** Weight of the load-balancing loss over ranks. */
  router_aux_loss_coef: number;
  init_lora_weights: boolean;
}

export const SMORA_DEFAULTS = { ...TARGET_DEFAULTS, r: 16, lora_alpha: 16, top_k: 4, router_aux_loss_coef: 0.01, init_lora_weights: true } as const;

export function parseSmoraConfig(raw: Record<string, unknown>, where = 'SmoraConfig'): SmoraConfig {
  const c = parseConfigFields<SmoraConfig>('SMORA', raw, SMORA_DEFAULTS, {
    ...BASE_CHECKS,
    r: is.int(1),
    lora_alpha: is.num,
    top_k: is.int(1),
    router_aux_loss_coef: is.num,
    init_lora_weights: is.bool,
  }, where);
  checkTargets(c, where);
  if (c.top_k > c.r) throw new Error(`${where}: top_k ${c.top_k} exceeds r ${c.r}`);
  return c;
}
