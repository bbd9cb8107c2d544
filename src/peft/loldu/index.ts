/** LoLDU as a PEFT method (`peft_type` "LOLDU", peftjs's own: PEFT has no LoLDU). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseLolduConfig, type LolduConfig } from './config.js';
import { LolduLinear } from './layer.js';

export const loldu: PeftMethod<LolduConfig> = {
  peftType: 'LOLDU',
  prefix: 'loldu_',
  supportsMerge: true,
  parseConfig: parseLolduConfig,
  inject: (target, adapterName, config, moduleName) => injectLinear(target, LolduLinear, adapterName, { r: config.r }, config, moduleName),
};

export { parseLolduConfig, LOLDU_DEFAULTS, type LolduConfig } from './config.js';
export { LolduLinear } from './layer.js';
export { leadingLdu, type Ldu } from './ldu.js';
