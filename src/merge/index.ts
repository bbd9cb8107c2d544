/** Merging: methods as pure functions over f32 arrays, streamed full-model merges, YAML configs, LoRA-space merges. */
export { linear, linearInto, type LinearOptions } from './methods/linear.js';
export { uniformSoup, greedySoup, type ModelState, type GreedySoup } from './methods/soup.js';
export { taskVectors, combineTaskVectors, taskArithmetic, type Consensus, type CombineOptions, type TaskArithmeticOptions } from './methods/task-arithmetic.js';
export { ties, trimByMagnitude, type TiesOptions } from './methods/ties.js';
export { dare, dareDrop, type DareOptions } from './methods/dare.js';
export { breadcrumbs, breadcrumbsMask, type BreadcrumbsOptions } from './methods/breadcrumbs.js';
export { slerp } from './methods/slerp.js';
export { fisherMerge, type FisherOptions } from './methods/fisher.js';
export { regmean, gram, type RegMeanOptions } from './methods/regmean.js';
export { mergeCheckpoints, type StreamMergeOptions, type MergeReport, type MergeProgress, type TensorMerger, type TensorContext } from './stream.js';
export { ShardWriter, type TensorSpec } from './shard-writer.js';
export { parseMergeConfig, runMerge, evaluateSetting, MergeConfigError, type MergeConfig, type RunMergeOptions } from './config.js';
export { METHODS } from './registry.js';
export {
  catLora, svdLora, factorize, loraDelta, combineLoraDeltas, readLoraAdapter, mergeLoraAdapters, mergeAdaptersIntoBase,
  type LoraPair, type LoadedAdapter, type AdapterCombination, type AdapterMergeOptions, type DeltaCombination, type DeltaCombineOptions,
} from './adapters.js';
export { estimateDiagonalFisher, saveFisher } from './fisher.js';
