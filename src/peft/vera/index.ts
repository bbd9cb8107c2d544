/** VeRA as a PEFT method (`peft_type` "VERA"). */
import type { PeftMethod } from '../registry.js';
import { empty } from '../../engine/index.js';
import { injectLinear, largestTargetShape } from '../common/linear-adapter.js';
import { layersWith, sharedTensor } from '../common/seeded-basis.js';
import { parseVeraConfig, type VeraConfig } from './config.js';
import { VeraLinear, veraSharedProjections } from './layer.js';

export const vera: PeftMethod<VeraConfig> = {
  peftType: 'VERA',
  prefix: 'vera_lambda_',
  supportsMerge: true,
  parseConfig: parseVeraConfig,
  inject: (target, adapterName, config, moduleName, model) =>
    injectLinear(
      target,
      VeraLinear,
      adapterName,
      {
        r: config.r,
        seed: config.projection_prng_key,
        dropout: config.vera_dropout,
        dInitial: config.d_initial,
        init: config.init_weights,
        ...largestTargetShape(model, config),
      },
      config,
      moduleName,
    ),
  // PEFT's shared projections: vera_A [r, max in], vera_B [max out, r]; each layer uses the top-left corner.
  sharedTensors: (peft, name) => {
    const c = peft.peftConfig.get(name) as VeraConfig;
    const layers = layersWith(peft, name, VeraLinear);
    const { maxIn, maxOut } = layers[0]!.spec(name);
    const seeded = veraSharedProjections(c.projection_prng_key, c.r, maxIn, maxOut);
    const [a, b] = [empty([c.r, maxIn]), empty([maxOut, c.r])];
    a.data.set(seeded.a);
    b.data.set(seeded.b);
    const ps = layers.map((l) => l.projection(name));
    return [
      sharedTensor('base_model.vera_A', a, ps.map((p) => p.a), c.save_projection),
      sharedTensor('base_model.vera_B', b, ps.map((p) => p.b), c.save_projection),
    ];
  },
};

export { parseVeraConfig, VERA_DEFAULTS, type VeraConfig } from './config.js';
export { VeraLinear, veraProjections, veraSharedProjections, type VeraSpec } from './layer.js';
