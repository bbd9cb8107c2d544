/** NOLA as a PEFT method (`peft_type` "NOLA", peftjs's own: PEFT has no NOLA). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { parseNolaConfig, type NolaConfig } from './config.js';
import { NolaLinear, nolaLayerSeed } from './layer.js';

export const nola: PeftMethod<NolaConfig> = {
  peftType: 'NOLA',
  prefix: 'nola_',
  supportsMerge: true,
  parseConfig: parseNolaConfig,
  inject: (target, adapterName, config, moduleName) =>
    injectLinear(
      target,
      NolaLinear,
      adapterName,
      {
        r: config.r,
        kA: config.num_basis_A,
        kB: config.num_basis_B,
        scale: config.nola_alpha / config.r,
        dropout: config.nola_dropout,
        seed: nolaLayerSeed(config.projection_prng_key, moduleName),
        init: config.init_weights,
      },
      config,
      moduleName,
    ),
};

export { parseNolaConfig, NOLA_DEFAULTS, type NolaConfig } from './config.js';
export { NolaLinear, nolaBases, nolaLayerSeed, type NolaSpec } from './layer.js';
