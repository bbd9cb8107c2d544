/** LoRA-SB as a PEFT method (not in HF PEFT; `peft_type` "LORASB"): registry entry and the gradient pre-pass. */
import { Linear, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { targetLinears, weightGradients } from '../common/capture.js';
import { peftWarn } from '../warn.js';
import { parseLoraSbConfig, type LoraSbConfig } from './config.js';
import { LORASB_UPDATES, LoraSbLinear, type LoraSbAdapterSpec } from './layer.js';

function spec(config: LoraSbConfig): LoraSbAdapterSpec {
  // alpha = r: the scale s = alpha / r is 1.
  return { r: config.r, alpha: config.r, dropout: config.lora_dropout, useRslora: false, init: true, sbInit: config.init_lora_weights };
}

export const lorasb: PeftMethod<LoraSbConfig> = {
  peftType: 'LORASB',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseLoraSbConfig,

  inject(target: Module, adapterName: string, config: LoraSbConfig, moduleName: string): LoraSbLinear | null {
    const layer = target instanceof LoraSbLinear ? target : target instanceof Linear ? new LoraSbLinear(target) : null;
    if (!layer) return null;
    if (config.init_lora_weights === 'lora_sb' && !config.inference_mode && !LORASB_UPDATES.has(layer.base))
      peftWarn(`LoRA-SB: no gradient for ${moduleName} (run preprocessLoraSb first); starting from random bases with R = 0`);
    layer.addAdapter(adapterName, spec(config));
    return layer;
  },
};

/**
 * The gradient pre-pass of LoRA-SB: runs `trainStep` (forward + `backward()` over a few samples) on the plain model
 * with the target weights requiring grad, and keeps each layer's approximated first update (−lr·sign(G) or −lr·G
 * per `init_update`) for the adapter created next with the same config.
 */
export function preprocessLoraSb(model: Module, rawConfig: Record<string, unknown>, trainStep: () => void): void {
  const config = parseLoraSbConfig({ ...rawConfig, peft_type: 'LORASB' }, 'preprocessLoraSb');
  const linears = targetLinears(model, config).map(([, l]) => l);
  weightGradients(model, linears, trainStep).forEach((g, i) => {
    const lr = config.init_lr;
    LORASB_UPDATES.set(linears[i]!, g.map((v) => (config.init_update === 'sign' ? -lr * Math.sign(v) : -lr * v)));
  });
}

export { parseLoraSbConfig, LORASB_DEFAULTS, type LoraSbConfig } from './config.js';
export { LoraSbLinear } from './layer.js';
