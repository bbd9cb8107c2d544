/** LoKr as a PEFT method (`peft_type` "LOKR"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { lycorisSpec } from '../common/lycoris.js';
import { parseLokrConfig, type LokrConfig } from './config.js';
import { LokrLinear, type LokrSpec } from './layer.js';

export const lokr: PeftMethod<LokrConfig> = {
  peftType: 'LOKR',
  prefix: 'lokr_',
  supportsMerge: true,
  parseConfig: parseLokrConfig,
  inject(target, adapterName, config, moduleName) {
    const spec: LokrSpec = { ...lycorisSpec(config, moduleName, config.rank_dropout_scale), decomposeBoth: config.decompose_both, decomposeFactor: config.decompose_factor };
    return injectLinear(target, LokrLinear, adapterName, spec, config, moduleName);
  },
};

export { parseLokrConfig, LOKR_DEFAULTS, type LokrConfig } from './config.js';
export { LokrLinear, factorization, kron, type LokrSpec } from './layer.js';
