/**
 * IncreLoRA as a PEFT method (`peft_type` "INCRELORA"; Zhang et al. 2023, not in HF PEFT). Linear layers only.
 * Training needs the per-step {@link IncreLoraAllocator} (see allocator.ts for the trainer protocol).
 */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseIncreLoraConfig, type IncreLoraConfig } from './config.js';
import { IncreLoraLinear } from './layer.js';
import { IncreLoraAllocator } from './allocator.js';

export const increlora: PeftMethod<IncreLoraConfig> = {
  peftType: 'INCRELORA',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseIncreLoraConfig,
  totalStepsField: 'total_step',
  trainingHooks: (peft, adapterName) => new IncreLoraAllocator(peft, adapterName).trainingHooks(),
  inject(target, adapterName, config, moduleName) {
    // A loaded adapter's rank_pattern says how many components this module had active: it gets exactly those.
    const active = config.rank_pattern?.[`${moduleName}.lora_E`]?.filter(Boolean).length;
    const spec = {
      r: active ?? config.max_r,
      active: active ?? config.init_r,
      ranknum: config.target_r,
      alpha: config.lora_alpha > 0 ? config.lora_alpha : config.target_r,
      dropout: config.lora_dropout,
      init: config.init_lora_weights,
    };
    return injectLinear(target, IncreLoraLinear, adapterName, spec, config, moduleName);
  },
};

export { parseIncreLoraConfig, INCRELORA_DEFAULTS, type IncreLoraConfig } from './config.js';
export { IncreLoraLinear, activePattern, type IncreLoraSpec } from './layer.js';
export { IncreLoraAllocator } from './allocator.js';
