/** RandLoRA as a PEFT method (`peft_type` "RANDLORA"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseRandLoraConfig, type RandLoraConfig } from './config.js';
import { RandLoraLinear } from './layer.js';

export const randlora: PeftMethod<RandLoraConfig> = {
  peftType: 'RANDLORA',
  prefix: 'randlora_',
  supportsMerge: true,
  parseConfig: parseRandLoraConfig,
  inject: (target, adapterName, config, moduleName) =>
    injectLinear(
      target,
      RandLoraLinear,
      adapterName,
      { r: config.r, seed: config.projection_prng_key, scale: config.randlora_alpha / config.r, dropout: config.randlora_dropout, init: config.init_weights },
      config,
      moduleName,
    ),
};

export { parseRandLoraConfig, RANDLORA_DEFAULTS, type RandLoraConfig } from './config.js';
export { RandLoraLinear, randLoraBases, numBases, type RandLoraSpec } from './layer.js';
