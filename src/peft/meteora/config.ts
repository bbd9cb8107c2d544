/**
 * `MeteoraConfig` (peft_type "METEORA"; not a PEFT method): N existing LoRA adapters embedded as frozen experts of
 * one layer-wise top-k gate. The experts' tensors live in the adapter file next to the gate, so the file loads back
 * on its own; `adapter_names` records where they came from.
 */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, TARGET_DEFAULTS } from '../common/select-config.js';
import type { GateInput } from '../moelora/layer.js';

export interface MeteoraConfig extends PeftConfigBase {
  peft_type: 'METEORA';
  /** Rank of the expert LoRAs (all equal). */
  r: number;
  /** Each expert's scaling (its LoRA's α/r, or α/√r with rsLoRA). */
  expert_scalings: number[];
  /** A name per expert (the LoRA it came from). */
  adapter_names: string[];
  /** Experts each token uses. */
  top_k: number;
  /** Weight of the load-balancing loss (0: none). */
  router_aux_loss_coef: number;
  /** Weight of the gate's cross-entropy against the token's task id during training (0: LM loss only). */
  gate_supervision_coef: number;
  /**
   * What the gates read: `token` (the token's layer input, the paper's gate) or `token_prefix_mean` (it and the
   * causal mean of the inputs up to it: the context that says which task the token is in; the gate is [E, 2·in]).
   */
  gate_input: GateInput;
  /**
   * The expert of each sequence's first real position, where no earlier token tells the task (null: the gate
   * decides). Needs top_k 1; `chooseFirstTokenExpert` picks it by loss after the gates are trained.
   */
  first_token_expert: number | null;
}

export const METEORA_DEFAULTS = {
  ...TARGET_DEFAULTS,
  r: 8,
  expert_scalings: [],
  adapter_names: [],
  top_k: 1,
  router_aux_loss_coef: 0,
  gate_supervision_coef: 0,
  gate_input: 'token',
  first_token_expert: null,
} as const;

export function parseMeteoraConfig(raw: Record<string, unknown>, where = 'MeteoraConfig'): MeteoraConfig {
  const c = parseConfigFields<MeteoraConfig>('METEORA', raw, METEORA_DEFAULTS, {
    ...BASE_CHECKS,
    r: is.int(1),
    expert_scalings: (v) => (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number') ? null : 'must be a non-empty list of numbers'),
    adapter_names: is.list,
    top_k: is.int(1),
    router_aux_loss_coef: is.num,
    gate_supervision_coef: is.num,
    gate_input: is.oneOf('token', 'token_prefix_mean'),
    first_token_expert: (v) => (v === null || (Number.isInteger(v) && (v as number) >= 0) ? null : 'must be null or an expert index'),
  }, where);
  checkTargets(c, where);
  if (c.expert_scalings.length === 0) throw new Error(`${where}: expert_scalings must list one scaling per expert LoRA`);
  if (c.adapter_names.length !== c.expert_scalings.length)
    throw new Error(`${where}: ${c.adapter_names.length} adapter_names for ${c.expert_scalings.length} expert_scalings`);
  if (c.top_k > c.expert_scalings.length) throw new Error(`${where}: top_k ${c.top_k} exceeds the ${c.expert_scalings.length} experts`);
  if (c.first_token_expert !== null && (c.top_k !== 1 || c.first_token_expert >= c.expert_scalings.length))
    throw new Error(`${where}: first_token_expert ${c.first_token_expert} needs top_k 1 and an index below the ${c.expert_scalings.length} experts`);
  return c;
}
