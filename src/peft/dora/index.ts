/**
 * DoRA as a PEFT method: `peft_type` "DORA" in peftjs (PEFT writes it as "LORA" with `use_dora: true`; see the
 * docs for interop). Linear layers only.
 */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { getPatternKey } from '../targets.js';
import { parseDoraConfig, type DoraConfig } from './config.js';
import { DoraLinear } from './layer.js';

export const dora: PeftMethod<DoraConfig> = {
  peftType: 'DORA',
  prefix: 'lora_',
  supportsMerge: true,
  parseConfig: parseDoraConfig,
  inject(target, adapterName, config, moduleName) {
    const r = config.rank_pattern[getPatternKey(Object.keys(config.rank_pattern), moduleName)] ?? config.r;
    const alpha = config.alpha_pattern[getPatternKey(Object.keys(config.alpha_pattern), moduleName)] ?? config.lora_alpha;
    const spec = { r, alpha, dropout: config.lora_dropout, useRslora: config.use_rslora, init: config.init_lora_weights };
    const layer = target instanceof DoraLinear ? target : target instanceof Linear ? new DoraLinear(target) : null;
    layer?.addAdapter(adapterName, spec);
    return layer;
  },
};

export { parseDoraConfig, type DoraConfig } from './config.js';
export { DoraLinear, doraWeightNorm } from './layer.js';
