/** RandLoRA as a PEFT method (`peft_type` "RANDLORA"). */
import type { PeftMethod } from '../registry.js';
import { injectLinear } from '../common/linear-adapter.js';
import { layersWith, seededBasis, sharedTensor } from '../common/seeded-basis.js';
import { parseRandLoraConfig, type RandLoraConfig } from './config.js';
import { numBases, RandLoraLinear } from './layer.js';

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
  // PEFT's shared bases, sized from the largest (out, in) over the layers: randlora_A [r, 1, min] and randlora_B
  // [max, ⌈min/r⌉, r]; a layer uses A[:, :, :d] and B[:D, :n, :] (the top-left corner of B viewed [max, n·r]).
  sharedTensors: (peft, name) => {
    const c = peft.peftConfig.get(name) as RandLoraConfig;
    const layers = layersWith(peft, name, RandLoraLinear);
    const [maxIn, maxOut] = [Math.max(...layers.map((l) => l.inFeatures)), Math.max(...layers.map((l) => l.outFeatures))];
    const [d, D] = [Math.min(maxIn, maxOut), Math.max(maxIn, maxOut)];
    const n = numBases(d, c.r);
    const [seed, bound] = [c.projection_prng_key, Math.sqrt(3)];
    const bases = layers.map((l) => l.basis(name));
    return [
      sharedTensor('base_model.randlora_A', seededBasis(seed, 'randlora_A', c.r, d, bound, [c.r, 1, d]), bases.map((b) => b.a), c.save_projection),
      sharedTensor('base_model.randlora_B', seededBasis(seed, 'randlora_B', D, n * c.r, bound, [D, n, c.r]), bases.map((b) => b.b), c.save_projection),
    ];
  },
};

export { parseRandLoraConfig, RANDLORA_DEFAULTS, type RandLoraConfig } from './config.js';
export { RandLoraLinear, randLoraBases, numBases, type RandLoraSpec } from './layer.js';
