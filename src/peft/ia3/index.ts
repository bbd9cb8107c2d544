/** (IA)³ as a PEFT method (`peft_type` "IA3"): learned rescaling vectors on the targeted Linear layers. */
import { Linear, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { findTargetsNoLayerFields } from '../common/targets.js';
import { peftWarn } from '../warn.js';
import { isFeedforward, parseIa3Config, type Ia3Config } from './config.js';
import { Ia3Linear } from './layer.js';

export const ia3: PeftMethod<Ia3Config> = {
  peftType: 'IA3',
  prefix: 'ia3_',
  supportsMerge: true,
  targets: findTargetsNoLayerFields,
  parseConfig: parseIa3Config,

  inject(target: Module, adapterName: string, config: Ia3Config, moduleName: string): Ia3Linear | null {
    const ff = isFeedforward(config, moduleName);
    if (target instanceof Ia3Linear) {
      if (target.isFeedforward !== ff) throw new Error(`IA3: ${moduleName} is ${target.isFeedforward ? '' : 'not '}a feedforward module in an earlier adapter`);
      target.addAdapter(adapterName, config.init_ia3_weights);
      return target;
    }
    if (!(target instanceof Linear)) return null;
    if (config.fan_in_fan_out !== target.fanInFanOut) {
      peftWarn(`IA3: fan_in_fan_out is ${config.fan_in_fan_out} but ${moduleName} stores its weight ${target.fanInFanOut ? '[in, out]' : '[out, in]'}; setting it to ${target.fanInFanOut}`);
      config.fan_in_fan_out = target.fanInFanOut;
    }
    const layer = new Ia3Linear(target, ff);
    layer.addAdapter(adapterName, config.init_ia3_weights);
    return layer;
  },
};

export { parseIa3Config, IA3_DEFAULTS, type Ia3Config } from './config.js';
export { Ia3Linear } from './layer.js';
