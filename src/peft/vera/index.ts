/** VeRA as a PEFT method (`peft_type` "VERA"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseVeraConfig, type VeraConfig } from './config.js';
import { VeraLinear } from './layer.js';

export const vera: PeftMethod<VeraConfig> = {
  peftType: 'VERA',
  prefix: 'vera_lambda_',
  supportsMerge: true,
  parseConfig: parseVeraConfig,
  inject: (target, adapterName, config, moduleName) =>
    injectLinear(
      target,
      VeraLinear,
      adapterName,
      { r: config.r, seed: config.projection_prng_key, dropout: config.vera_dropout, dInitial: config.d_initial, init: config.init_weights },
      config,
      moduleName,
    ),
};

export { parseVeraConfig, VERA_DEFAULTS, type VeraConfig } from './config.js';
export { VeraLinear, veraProjections, type VeraSpec } from './layer.js';
