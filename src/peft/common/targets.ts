/** Target matching for methods whose PEFT config has no `layers_to_transform` / `layers_pattern` fields (IA3, LN_TUNING). */
import type { Module } from '../../nn/index.js';
import type { PeftConfigBase } from '../config.js';
import { findTargetModules } from '../targets.js';

/** `findTargetModules` with the layer-selection fields absent from the config read as null. */
export function findTargetsNoLayerFields(model: Module, config: PeftConfigBase): string[] {
  return findTargetModules(model, { ...config, layers_to_transform: config.layers_to_transform ?? null, layers_pattern: config.layers_pattern ?? null });
}
