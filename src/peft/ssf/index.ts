/** SSF as a PEFT method (`peft_type` "SSF", not in HF PEFT): scale and shift after the targeted Linear layers. */
import { Linear, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { parseSsfConfig, type SsfConfig } from './config.js';
import { SsfLinear } from './layer.js';

export const ssf: PeftMethod<SsfConfig> = {
  peftType: 'SSF',
  prefix: 'ssf_',
  supportsMerge: true,
  parseConfig: parseSsfConfig,

  inject(target: Module, adapterName: string, config: SsfConfig): SsfLinear | null {
    const layer = target instanceof SsfLinear ? target : target instanceof Linear ? new SsfLinear(target) : null;
    layer?.addAdapter(adapterName, config.init_ssf_weights);
    return layer;
  },
};

export { parseSsfConfig, SSF_DEFAULTS, type SsfConfig } from './config.js';
export { SsfLinear } from './layer.js';
