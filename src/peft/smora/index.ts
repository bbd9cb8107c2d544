/** SMoRA as a PEFT method (`peft_type` "SMORA"): every rank of one LoRA is an expert, gated per token. */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { auxLossHooks } from '../../multitask/routing.js';
import { parseSmoraConfig, type SmoraConfig } from './config.js';
import { SmoraLinear } from './layer.js';

export const smora: PeftMethod<SmoraConfig> = {
  peftType: 'SMORA',
  prefix: 'lora_',
  supportsMerge: false,
  // The router losses the layers add during the forward join the training loss.
  trainingHooks: auxLossHooks,
  parseConfig: parseSmoraConfig,
  inject(target, adapterName, c) {
    const layer = target instanceof SmoraLinear ? target : target instanceof Linear ? new SmoraLinear(target) : null;
    layer?.addAdapter(adapterName, { r: c.r, scale: c.lora_alpha / c.r, topK: c.top_k, auxCoef: c.router_aux_loss_coef, init: c.init_lora_weights });
    return layer;
  },
};

export { parseSmoraConfig, SMORA_DEFAULTS, type SmoraConfig } from './config.js';
export { SmoraLinear, type SmoraSpec } from './layer.js';
