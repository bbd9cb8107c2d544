/**
 * `MoeLoraConfig` (peft_type "MOELORA"; PEFT has no such method, so the names follow LoRA's where they mean the
 * same and Mixtral's `router_aux_loss_coef` for the balancing weight).
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, TARGET_DEFAULTS } from '../common/select-config.js';

export interface MoeLoraConfig extends PeftConfigBase {
  peft_type: 'MOELORA';
  /** Rank of every expert. */
  r: number;
  lora_alpha: number;
  /** Experts per layer. */
  num_experts: number;
  /** Experts each token is routed to. */
  top_k: number;
  /** Weight of the load-balancing loss `E · Σ f_e P_e` added to the training loss. */
  router_aux_loss_coef: number;
  /** true: B = 0 (a no-op adapter at start). */
  init_lora_weights: boolean;
}

export const MOELORA_DEFAULTS = { ...TARGET_DEFAULTS, r: 8, lora_alpha: 8, num_experts: 4, top_k: 2, router_aux_loss_coef: 0.01, init_lora_weights: true } as const;

export function parseMoeLoraConfig(raw: Record<string, unknown>, where = 'MoeLoraConfig'): MoeLoraConfig {
  const c = parseConfigFields<MoeLoraConfig>('MOELORA', raw, MOELORA_DEFAULTS, {
    ...BASE_CHECKS,
    r: is.int(1),
    lora_alpha: is.num,
    num_experts: is.int(1),
    top_k: is.int(1),
    router_aux_loss_coef: is.num,
    init_lora_weights: is.bool,
  }, where);
  checkTargets(c, where);
  if (c.top_k > c.num_experts) throw new Error(`${where}: top_k ${c.top_k} exceeds num_experts ${c.num_experts}`);
  return c;
}
