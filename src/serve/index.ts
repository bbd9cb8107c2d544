/** Serving many LoRA adapters over one base model: heterogeneous-batch LoRA, continuous batching, the HTTP API. */
export { LoraRouting, LoraPool, BatchLoraLinear, batchLoraTargets, injectBatchLora } from './batch-lora.js';
export { SlotKVCache, slotBytes } from './kv-pool.js';
export { AdapterStore, AdapterStoreFullError, type AdapterStoreStats } from './adapter-store.js';
export {
  Scheduler,
  sampleToken,
  type SamplingParams,
  type GenerationRequest,
  type GenerationResult,
  type FinishReason,
  type SchedulerEvents,
  type SchedulerOptions,
  type SchedulerStats,
} from './scheduler.js';
export { createEngine, type Engine, type EngineOptions } from './engine.js';
export { InferenceWorker, type WorkerOptions, type WorkerInfo, type WorkerStats, type PromptInput, type RequestHandlers } from './worker.js';
export { createServer, ApiError, type ServerOptions } from './http.js';
export { Registry, Counter, Gauge, Histogram } from './metrics.js';
