/** Polytropon / MHR as a PEFT method (`peft_type` "POLY"): a routed inventory of LoRA skills per task. */
import { Linear } from '../../nn/index.js';
import type { PeftMethod } from '../registry.js';
import { findTargetsNoLayerFields } from '../common/targets.js';
import { parsePolyConfig, type PolyConfig } from './config.js';
import { PolyLinear } from './layer.js';

export const polytropon: PeftMethod<PolyConfig> = {
  peftType: 'POLY',
  prefix: 'poly_',
  supportsMerge: false,
  parseConfig: parsePolyConfig,
  taskCountField: 'n_tasks',
  targets: findTargetsNoLayerFields,
  inject(target, adapterName, c) {
    const layer = target instanceof PolyLinear ? target : target instanceof Linear ? new PolyLinear(target) : null;
    layer?.addAdapter(adapterName, { r: c.r, nTasks: c.n_tasks, nSkills: c.n_skills, nSplits: c.n_splits, init: c.init_weights });
    return layer;
  },
};

export { parsePolyConfig, POLY_DEFAULTS, type PolyConfig } from './config.js';
export { PolyLinear, type PolySpec } from './layer.js';
export { tuneRouterOnly, averageSkillsAsLora } from './mhr.js';
