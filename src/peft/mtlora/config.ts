/** `MtloraConfig` (peft_type "MTLORA"; not a PEFT method: LoRA's names for the shared part, `task_*` for the per-task part). */
import { BASE_CHECKS, is, parseConfigFields, type PeftConfigBase } from '../config.js';
import { checkTargets, probability, TARGET_DEFAULTS } from '../common/select-config.js';

export interface MtloraConfig extends PeftConfigBase {
  peft_type: 'MTLORA';
  /** Rank and α of the task-agnostic LoRA. */
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Rank and α of each task-specific LoRA. */
  task_r: number;
  task_alpha: number;
  /** Number of tasks (task ids 0 … n_tasks − 1). */
  n_tasks: number;
  init_lora_weights: boolean;
}

export const MTLORA_DEFAULTS = { ...TARGET_DEFAULTS, r: 8, lora_alpha: 16, lora_dropout: 0, task_r: 4, task_alpha: 8, n_tasks: 1, init_lora_weights: true } as const;

export function parseMtloraConfig(raw: Record<string, unknown>, where = 'MtloraConfig'): MtloraConfig {
  const c = parseConfigFields<MtloraConfig>('MTLORA', raw, MTLORA_DEFAULTS, {
    ...BASE_CHECKS,
    r: is.int(1),
    lora_alpha: is.num,
    lora_dropout: probability,
    task_r: is.int(1),
    task_alpha: is.num,
    n_tasks: is.int(1),
    init_lora_weights: is.bool,
  }, where);
  checkTargets(c, where);
  return c;
}
