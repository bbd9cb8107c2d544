/** DyLoRA as a PEFT method (`peft_type` "DYLORA", peftjs's own: PEFT has no DyLoRA). Linear layers only. */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { parseDyloraConfig, type DyloraConfig } from './config.js';
import { DyloraLinear, type DyloraSpec } from './layer.js';

export const dylora: PeftMethod<DyloraConfig> = {
  peftType: 'DYLORA',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseDyloraConfig,
  inject(target, adapterName, config) {
    const spec: DyloraSpec = {
      r: config.r,
      alpha: config.lora_alpha,
      dropout: config.lora_dropout,
      useRslora: false,
      init: true,
      minR: config.min_r,
      frozenLower: config.frozen_lower,
      evalR: config.eval_r ?? config.r,
    };
    const layer = target instanceof DyloraLinear ? target : target instanceof Linear ? new DyloraLinear(target) : null;
    layer?.addAdapter(adapterName, spec);
    return layer;
  },
};

export { parseDyloraConfig, DYLORA_DEFAULTS, type DyloraConfig } from './config.js';
export { DyloraLinear, type DyloraSpec } from './layer.js';
