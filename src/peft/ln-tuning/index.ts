/** LayerNorm tuning as a PEFT method (`peft_type` "LN_TUNING"): trainable copies of the targeted norms' parameters. */
import { LayerNorm, RMSNorm, type Module } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { findTargetsNoLayerFields } from '../common/targets.js';
import { parseLnTuningConfig, type LnTuningConfig } from './config.js';
import { LnTuningLayer } from './layer.js';

export const lnTuning: PeftMethod<LnTuningConfig> = {
  peftType: 'LN_TUNING',
  prefix: 'ln_tuning_',
  supportsMerge: true,
  targets: findTargetsNoLayerFields,
  parseConfig: parseLnTuningConfig,

  inject(target: Module, adapterName: string, _config: LnTuningConfig, moduleName: string): LnTuningLayer | null {
    if (target instanceof LnTuningLayer) {
      target.addAdapter(adapterName);
      return target;
    }
    if (!(target instanceof RMSNorm || target instanceof LayerNorm)) return null;
    if (target.namedParameters().length === 0) throw new Error(`LN_TUNING: ${moduleName} has no affine parameters to tune`);
    const layer = new LnTuningLayer(target);
    layer.addAdapter(adapterName);
    return layer;
  },
};

export { parseLnTuningConfig, LN_TUNING_DEFAULTS, type LnTuningConfig } from './config.js';
export { LnTuningLayer } from './layer.js';
