/** VeRA as a PEFT method (`peft_type` "VERA"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { layersWith, sharedBasis } from '../common/seeded-basis.js';
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
  // PEFT's shared projections: vera_A [r, max in], vera_B [max out, r]; each layer uses the top-left corner.
  sharedTensors: (peft, name) => {
    const c = peft.peftConfig.get(name) as VeraConfig;
    if (!c.save_projection) return [];
    const ps = layersWith(peft, name, VeraLinear).map((l) => l.projection(name));
    const [maxIn, maxOut] = [Math.max(...ps.map((p) => p.a.shape[1]!)), Math.max(...ps.map((p) => p.b.shape[0]!))];
    const seed = c.projection_prng_key;
    return [
      sharedBasis('base_model.vera_A', ps.map((p) => p.a), { seed, tag: 'vera_A', rows: c.r, cols: maxIn, bound: Math.sqrt(6 / maxIn), shape: [c.r, maxIn] }),
      sharedBasis('base_model.vera_B', ps.map((p) => p.b), { seed, tag: 'vera_B', rows: maxOut, cols: c.r, bound: Math.sqrt(6 / c.r), shape: [maxOut, c.r] }),
    ];
  },
};

export { parseVeraConfig, VERA_DEFAULTS, type VeraConfig } from './config.js';
export { VeraLinear, veraProjections, type VeraSpec } from './layer.js';
