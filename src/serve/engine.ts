/**
 * Assembles a serving engine over one causal LM: batched-LoRA layers injected on its Linears, the adapter store
 * within its memory budget, the KV slot pool within its budget, and the continuous-batching scheduler.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/index.js';
import { AdapterStore } from './adapter-store.js';
import { batchLoraTargets, injectBatchLora, LoraRouting } from './batch-lora.js';
import { SlotKVCache, slotBytes } from './kv-pool.js';
import { Scheduler, type SchedulerEvents } from './scheduler.js';

export interface EngineOptions {
  /** Adapters to register at start: name → HF PEFT LoRA directory (loaded on first use). */
  adapters?: Record<string, string>;
  /** Sequences decoded together at most (default 32). */
  maxBatch?: number;
  /** Context per sequence, prompt + generated (default min(max positions, 1024)). */
  maxSeqLen?: number;
  /** Memory for the KV cache; caps the batch at ⌊budget / one sequence's KV bytes⌋ (default 2 GiB). */
  kvBudgetBytes?: number;
  /** Memory for resident adapter factors (default 512 MiB); the LRU evicts beyond it. */
  adapterBudgetBytes?: number;
  /** Adapters resident at once at most (default 256). */
  maxLoadedAdapters?: number;
  policy?: 'mixed' | 'grouped';
}

export interface Engine {
  model: CausalLM;
  tokenizer: Tokenizer | null;
  store: AdapterStore;
  scheduler: Scheduler;
  /** Resolved sizes. */
  maxBatch: number;
  maxSeqLen: number;
  capacityRanks: number;
}

/** Builds an engine around `model` (its target Linears are wrapped in place). */
export function createEngine(model: CausalLM, tokenizer: Tokenizer | null, events: SchedulerEvents, opts: EngineOptions = {}): Engine {
  const c = model.config;
  const maxSeqLen = opts.maxSeqLen ?? Math.min(c.maxPositions, 1024);
  const perSeq = slotBytes(c.numLayers, maxSeqLen, c.numKvHeads, c.headDim);
  const maxBatch = Math.min(opts.maxBatch ?? 32, Math.floor((opts.kvBudgetBytes ?? 2 ** 31) / perSeq));
  if (maxBatch < 1) throw new Error(`serve: the KV budget holds no sequence of ${maxSeqLen} positions (${perSeq} bytes each)`);
  const routing = new LoraRouting();
  const slots = opts.maxLoadedAdapters ?? 256;
  // One rank row costs in + out floats in every target layer's pool.
  const bytesPerRank = 4 * batchLoraTargets(model).reduce((s, [, l]) => s + l.inFeatures + l.outFeatures, 0);
  const capacityRanks = Math.floor((opts.adapterBudgetBytes ?? 2 ** 29) / Math.max(1, bytesPerRank));
  const pools = injectBatchLora(model, routing, slots, capacityRanks);
  const store = new AdapterStore(pools, slots, capacityRanks);
  for (const [name, dir] of Object.entries(opts.adapters ?? {})) store.register(name, dir);
  const cache = new SlotKVCache(c.numLayers, maxBatch, maxSeqLen, c.numKvHeads, c.headDim);
  const scheduler = new Scheduler(model, tokenizer, store, routing, cache, events, { policy: opts.policy });
  return { model, tokenizer, store, scheduler, maxBatch, maxSeqLen, capacityRanks };
}
