/**
 * Fine-tuning: `train(config)` — the programmatic twin of `peftjs train` (same fields, same validation).
 *
 * @example
 * ```ts
 * import { train } from 'peftjs';
 * const r = await train({
 *   model: 'models/stories260K',      // HF folder or llama2.c .bin
 *   data: 'data/train.jsonl',         // {"text"} | {"prompt","completion"} | {"messages"} records, or .csv/.txt
 *   output: 'runs/lora',              // adapter (HF PEFT format), checkpoints, metrics.jsonl, loss_curve.svg
 *   method: 'lora', r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'],
 *   lr: 2e-4, maxSteps: 500, batchSize: 8, seqLen: 256, evalEvery: 100,
 * });
 * console.log(r.finalEval?.loss, r.tokensPerSecond);
 * ```
 */
export { train, evaluate, cpuHasBf16, METRICS_NAME, CURVE_NAME, TASKS_NAME, type TrainResult, type TrainHooks, type EvalResult, type TaskEval } from './trainer.js';
export { trainConfigSchema, validateConfig, configFromArgs, parseFlags, readConfigFile, ConfigError, type TrainConfig, type TrainConfigInput } from './config.js';
export { learningRate, type ScheduleKind, type ScheduleOptions } from './schedule.js';
export { CheckpointTape, CheckpointedLayer, enableCheckpointing } from './checkpointing.js';
export { saveCheckpoint, loadCheckpoint, listCheckpoints, type TrainerState } from './checkpoint.js';
export { MetricsLog, peakRssBytes, type MetricsRecord } from './metrics.js';
export { lossCurveSvg, lineChartSvg } from './plot.js';
export { readExamples, DataError, type Example, type DataFormat } from './data/formats.js';
export { tokenizeExample, type TokenizedExample, type Reference } from './data/tokenize.js';
export { buildRows, collate, IGNORE_INDEX, type Row, type Batch } from './data/pack.js';
export { BatchLoader, trainEvalSplit, permutation } from './data/split.js';
export { prepareData, type PreparedData, type DataReport } from './data/prepare.js';
export { TaskBatchLoader, type TaskLoaderPosition } from './data/tasks.js';
