/** Houlsby bottleneck adapters and Compacter as a PEFT method (`peft_type` "BOTTLENECK", not in HF PEFT). */
import { Linear, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { parseBottleneckConfig, type BottleneckConfig } from './config.js';
import { BottleneckLinear, bottleneckWidth } from './layer.js';

export const bottleneck: PeftMethod<BottleneckConfig> = {
  peftType: 'BOTTLENECK',
  prefix: 'adapter_',
  supportsMerge: false,
  parseConfig: parseBottleneckConfig,

  inject(target: Module, adapterName: string, c: BottleneckConfig): BottleneckLinear | null {
    const layer = target instanceof BottleneckLinear ? target : target instanceof Linear ? new BottleneckLinear(target) : null;
    layer?.addAdapter(adapterName, {
      width: bottleneckWidth(layer.base.outFeatures, c.reduction_factor),
      act: c.non_linearity,
      phm: c.phm_layer ? { n: c.phm_dim, rank: c.phm_rank, factorized: c.factorized_phm_W, initRange: c.phm_init_range } : null,
      init: c.init_weights,
    });
    return layer;
  },
};

export { parseBottleneckConfig, BOTTLENECK_DEFAULTS, type BottleneckConfig } from './config.js';
export { BottleneckLinear, bottleneckWidth } from './layer.js';
export { kroneckerSum, phmWeight } from './phm.js';
