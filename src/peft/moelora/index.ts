/** MoE-LoRA as a PEFT method (`peft_type` "MOELORA"): several LoRA experts per layer behind a learned top-k router. */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { auxLossHooks } from '../../multitask/routing.js';
import { parseMoeLoraConfig, type MoeLoraConfig } from './config.js';
import { MoeLoraLinear } from './layer.js';

export const moelora: PeftMethod<MoeLoraConfig> = {
  peftType: 'MOELORA',
  prefix: 'lora_',
  supportsMerge: false,
  // The router losses the layers add during the forward join the training loss.
  trainingHooks: auxLossHooks,
  parseConfig: parseMoeLoraConfig,
  inject(target, adapterName, c) {
    const layer = target instanceof MoeLoraLinear ? target : target instanceof Linear ? new MoeLoraLinear(target) : null;
    layer?.addAdapter(adapterName, {
      r: c.r,
      scales: Array.from({ length: c.num_experts }, () => c.lora_alpha / c.r),
      topK: c.top_k,
      auxCoef: c.router_aux_loss_coef,
      supervisionCoef: 0,
      init: c.init_lora_weights,
      trainExperts: true,
      router: 'lora_router',
    });
    return layer;
  },
};

export { parseMoeLoraConfig, MOELORA_DEFAULTS, type MoeLoraConfig } from './config.js';
export { MoeLoraLinear, type MoeLoraSpec } from './layer.js';
