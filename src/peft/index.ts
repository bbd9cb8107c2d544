/** PEFT: the method registry, target matching, adapter injection, the HF PEFT adapter format, LoRA. */
export { PeftModel, type PeftModelOptions, type ParameterCounts } from './model.js';
export { peftMethod, peftTypes, type PeftMethod } from './registry.js';
export { parseConfigFields, configToJson, type PeftConfigBase, type ModuleSelector } from './config.js';
export {
  ALL_LINEAR,
  allLinearNames,
  checkTargetModuleExists,
  findModulesToSave,
  findTargetModules,
  getPatternKey,
  type TargetConfig,
  type TargetOptions,
} from './targets.js';
export { isTunerLayer, ModuleDict, ParameterDict, type TunerLayer } from './tuner.js';
export { ModulesToSaveWrapper, cloneModule } from './modules-to-save.js';
export {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  adapterStateDict,
  loadAdapterInto,
  readAdapterConfig,
  readAdapterFiles,
  saveMergedModel,
  savePeftModel,
  writeAdapterFiles,
  type AdapterFiles,
  type LoadAdapterOptions,
  type SaveMergedOptions,
} from './format.js';
export { summarizeAdapter, formatAdapterSummary, type AdapterSummary, type AdapterTarget } from './inspect.js';
export { setPeftWarningHandler, type WarningHandler } from './warn.js';
export * from './lora/index.js';
export { needsCalibration, calibrateBase, calibrateAdapter, type CalibrationBatch } from './calibrate.js';
export { meteoraFromLoras, type MeteoraOptions } from './meteora/index.js';
export { tuneRouterOnly, averageSkillsAsLora } from './polytropon/index.js';
