/**
 * AdaLoRA as a PEFT method (`peft_type` "ADALORA"). Linear layers only. Training needs the per-step
 * {@link RankAllocator} (see allocator.ts for the trainer protocol).
 */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseAdaLoraConfig, type AdaLoraConfig } from './config.js';
import { AdaLoraLinear } from './layer.js';
import { RankAllocator } from './allocator.js';

export const adalora: PeftMethod<AdaLoraConfig> = {
  peftType: 'ADALORA',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseAdaLoraConfig,
  totalStepsField: 'total_step',
  trainingHooks: (peft, adapterName) => new RankAllocator(peft, adapterName).trainingHooks(),
  inject(target, adapterName, config, moduleName) {
    // A loaded adapter's rank_pattern says how many components this module kept (PEFT's resize on load).
    const kept = config.rank_pattern?.[`${moduleName}.lora_E`];
    const spec = {
      r: kept ? kept.filter(Boolean).length : config.init_r,
      ranknum: config.init_r,
      alpha: config.lora_alpha > 0 ? config.lora_alpha : config.init_r,
      dropout: config.lora_dropout,
      init: config.init_lora_weights,
    };
    return injectLinear(target, AdaLoraLinear, adapterName, spec, config, moduleName);
  },
};

export { parseAdaLoraConfig, parseSvdScheduleConfig, ADALORA_DEFAULTS, ADALORA_CHECKS, type AdaLoraConfig, type SvdScheduleConfig } from './config.js';
export { AdaLoraLinear, type AdaLoraSpec } from './layer.js';
export { RankAllocator } from './allocator.js';
export { TripletImportance } from './importance.js';
