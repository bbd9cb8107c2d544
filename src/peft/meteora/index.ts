/**
 * MeteoRA as a PEFT method (`peft_type` "METEORA"): existing LoRAs as frozen experts behind a trainable per-token,
 * per-layer top-k gate (the MoE-LoRA layer with its experts frozen), so one model picks the right adapter — and
 * switches mid-sequence — without being told the task. Build one from adapter folders with {@link meteoraFromLoras}.
 */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { auxLossHooks } from '../../multitask/routing.js';
import { MoeLoraLinear } from '../moelora/layer.js';
import { parseMeteoraConfig, type MeteoraConfig } from './config.js';

export const meteora: PeftMethod<MeteoraConfig> = {
  peftType: 'METEORA',
  prefix: 'meteora_',
  supportsMerge: false,
  // The router losses the layers add during the forward join the training loss.
  trainingHooks: auxLossHooks,
  parseConfig: parseMeteoraConfig,
  inject(target, adapterName, c) {
    const layer = target instanceof MoeLoraLinear ? target : target instanceof Linear ? new MoeLoraLinear(target, 'METEORA') : null;
    layer?.addAdapter(adapterName, {
      r: c.r,
      scales: c.expert_scalings,
      topK: c.top_k,
      auxCoef: c.router_aux_loss_coef,
      supervisionCoef: c.gate_supervision_coef,
      init: true,
      trainExperts: false,
      renormalize: true,
      router: 'meteora_gate',
      gateInput: c.gate_input,
      firstExpert: c.first_token_expert ?? undefined,
    });
    return layer;
  },
};

export { parseMeteoraConfig, METEORA_DEFAULTS, type MeteoraConfig } from './config.js';
export { meteoraFromLoras, type MeteoraOptions } from './build.js';
