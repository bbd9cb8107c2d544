/** MTLoRA as a PEFT method (`peft_type` "MTLORA"): a shared LoRA plus a task-specific LoRA chosen per example. */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { parseMtloraConfig, type MtloraConfig } from './config.js';
import { MtloraLinear } from './layer.js';

export const mtlora: PeftMethod<MtloraConfig> = {
  peftType: 'MTLORA',
  prefix: 'lora_',
  supportsMerge: false,
  parseConfig: parseMtloraConfig,
  taskCountField: 'n_tasks',
  inject(target, adapterName, c) {
    const layer = target instanceof MtloraLinear ? target : target instanceof Linear ? new MtloraLinear(target) : null;
    layer?.addAdapter(adapterName, {
      r: c.r,
      scale: c.lora_alpha / c.r,
      taskR: c.task_r,
      taskScale: c.task_alpha / c.task_r,
      nTasks: c.n_tasks,
      dropout: c.lora_dropout,
      init: c.init_lora_weights,
    });
    return layer;
  },
};

export { parseMtloraConfig, MTLORA_DEFAULTS, type MtloraConfig } from './config.js';
export { MtloraLinear, type MtloraSpec } from './layer.js';
