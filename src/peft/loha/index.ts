/** LoHa as a PEFT method (`peft_type` "LOHA"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { lycorisSpec } from '../common/lycoris.js';
import { parseLohaConfig, type LohaConfig } from './config.js';
import { LohaLinear } from './layer.js';

export const loha: PeftMethod<LohaConfig> = {
  peftType: 'LOHA',
  prefix: 'hada_',
  supportsMerge: true,
  parseConfig: parseLohaConfig,
  inject: (target, adapterName, config, moduleName) => injectLinear(target, LohaLinear, adapterName, lycorisSpec(config, moduleName, true), config, moduleName),
};

export { parseLohaConfig, LOHA_DEFAULTS, type LohaConfig } from './config.js';
export { LohaLinear } from './layer.js';
