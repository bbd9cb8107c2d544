/**
 * The adapters a server knows and the ones it holds in memory. Adapters are registered by name and directory
 * (HF PEFT LoRA format, read through src/peft's loader) and loaded on first use into the per-layer
 * {@link LoraPool}s: one slot index and one range of rank rows shared by every pool (S-LoRA's unified pool at
 * rank granularity). When the rank rows or slots run out, the least recently used adapter that no running
 * sequence holds is evicted. Loading and unloading happen between decode steps and never stop running requests;
 * an adapter removed while sequences use it is freed when the last one releases it.
 */
import { backend } from '../engine/index.js';
import { readAdapterFiles, getPatternKey, loraScaling, type LoraConfig } from '../peft/index.js';
import type { TensorData } from '../io/safetensors.js';
import type { LoraPool } from './batch-lora.js';

const KEY = /^(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight$/;

/** One adapter's factors per target layer, as read from its directory. */
interface AdapterWeights {
  /** Largest rank over its layers: the rank rows it takes in every pool. */
  rank: number;
  layers: { pool: LoraPool; A: Float32Array; B: Float32Array; r: number; scale: number }[];
}

interface Entry {
  name: string;
  dir: string;
  /** Slot in the pools while loaded. */
  slot: number;
  /** First rank row while loaded. */
  offset: number;
  rank: number;
  /** Running sequences holding it. */
  pins: number;
  lastUsed: number;
  /** Unregistered while pinned: freed on the last release. */
  removed: boolean;
}

/** What a store is doing, for /v1/models and /metrics. */
export interface AdapterStoreStats {
  registered: number;
  loaded: number;
  usedRanks: number;
  capacityRanks: number;
  loads: number;
  evictions: number;
}

/** Thrown when an adapter cannot be placed now because every resident adapter is in use (the caller retries). */
export class AdapterStoreFullError extends Error {}

function f32Of(t: TensorData, key: string): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.dtype === 'F32') return Float32Array.from(t.data as Float32Array);
  const out = new Float32Array(n);
  if (t.dtype === 'BF16') backend().castBF16ToF32(t.data as Uint16Array, out, n);
  else if (t.dtype === 'F16') backend().castF16ToF32(t.data as Uint16Array, out, n);
  else throw new Error(`adapter tensor ${key}: dtype ${t.dtype} is not a float type`);
  return out;
}

export class AdapterStore {
  private readonly entries = new Map<string, Entry>();
  /** Free rank-row ranges [start, end), sorted and coalesced. */
  private free: [number, number][];
  private readonly freeSlots: number[];
  private clock = 0;
  private loads = 0;
  private evictions = 0;

  /**
   * @param pools the target layers' pools by module name (from `injectBatchLora`); all share `slots` and
   *   `capacityRanks`.
   */
  constructor(
    private readonly pools: Map<string, LoraPool>,
    readonly slots: number,
    readonly capacityRanks: number,
  ) {
    this.free = [[0, capacityRanks]];
    this.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  /** Makes adapter `name` (an HF PEFT LoRA directory) known; it is loaded on first use. */
  register(name: string, dir: string): void {
    const e = this.entries.get(name);
    if (e && !e.removed) throw new Error(`adapter '${name}' is already registered`);
    if (e) throw new Error(`adapter '${name}' is being removed (sequences still use it); register it again when they end`);
    this.entries.set(name, { name, dir, slot: -1, offset: -1, rank: 0, pins: 0, lastUsed: 0, removed: false });
  }

  /** Forgets adapter `name`; frees it now, or when the last sequence using it ends. */
  unregister(name: string): void {
    const e = this.entries.get(name);
    if (!e || e.removed) throw new Error(`no adapter '${name}'`);
    e.removed = true;
    if (e.pins === 0) {
      this.unload(e);
      this.entries.delete(name);
    }
  }

  has(name: string): boolean {
    const e = this.entries.get(name);
    return !!e && !e.removed;
  }

  names(): string[] {
    return [...this.entries.values()].filter((e) => !e.removed).map((e) => e.name);
  }

  isLoaded(name: string): boolean {
    return (this.entries.get(name)?.slot ?? -1) >= 0;
  }

  stats(): AdapterStoreStats {
    const loaded = [...this.entries.values()].filter((e) => e.slot >= 0);
    return {
      registered: this.names().length,
      loaded: loaded.length,
      usedRanks: loaded.reduce((s, e) => s + e.rank, 0),
      capacityRanks: this.capacityRanks,
      loads: this.loads,
      evictions: this.evictions,
    };
  }

  /**
   * The slot of adapter `name`, loading it first if needed, pinned until {@link release}. Throws
   * {@link AdapterStoreFullError} when it does not fit now because the resident adapters are in use.
   */
  acquire(name: string): number {
    const e = this.entries.get(name);
    if (!e || e.removed) throw new Error(`no adapter '${name}'`);
    if (e.slot < 0) this.load(e);
    e.pins++;
    e.lastUsed = ++this.clock;
    return e.slot;
  }

  /** Unpins an adapter acquired with {@link acquire}. */
  release(name: string): void {
    const e = this.entries.get(name);
    if (!e || e.pins === 0) throw new Error(`AdapterStore.release: adapter '${name}' is not acquired`);
    e.pins--;
    if (e.pins === 0 && e.removed) {
      this.unload(e);
      this.entries.delete(name);
    }
  }

  /** Reads and validates an adapter directory against the pools (no pool is touched). */
  private read(e: Entry): AdapterWeights {
    const files = readAdapterFiles(e.dir);
    const c = files.config as LoraConfig;
    if (c.peft_type !== 'LORA') throw new Error(`adapter '${e.name}' (${e.dir}) is ${c.peft_type}; serving batches LoRA adapters only`);
    const factors = new Map<string, { A?: TensorData; B?: TensorData }>();
    for (const [key, t] of files.tensors) {
      const m = KEY.exec(key);
      if (!m) throw new Error(`adapter '${e.name}' (${e.dir}): tensor ${key} is not a LoRA factor of a Linear layer (modules_to_save, biases and embeddings are not served)`);
      const f = factors.get(m[1]!) ?? {};
      f[m[2] as 'A' | 'B'] = t;
      factors.set(m[1]!, f);
    }
    const layers: AdapterWeights['layers'] = [];
    for (const [path, { A, B }] of factors) {
      const pool = this.pools.get(path);
      if (!pool) throw new Error(`adapter '${e.name}' (${e.dir}): module ${path} is not a servable Linear of the base model`);
      if (!A || !B) throw new Error(`adapter '${e.name}' (${e.dir}): module ${path} lacks lora_${A ? 'B' : 'A'}.weight`);
      const r = A.shape[0]!;
      if (A.shape.join() !== [r, pool.inF].join() || B.shape.join() !== [pool.outF, r].join())
        throw new Error(`adapter '${e.name}' (${e.dir}): ${path} has lora_A [${A.shape.join(', ')}] and lora_B [${B.shape.join(', ')}], the layer needs [r, ${pool.inF}] and [${pool.outF}, r]`);
      const alpha = c.alpha_pattern[getPatternKey(Object.keys(c.alpha_pattern), path)] ?? c.lora_alpha;
      layers.push({ pool, A: f32Of(A, `${path}.lora_A`), B: f32Of(B, `${path}.lora_B`), r, scale: loraScaling(alpha, r, c.use_rslora) });
    }
    if (!layers.length) throw new Error(`adapter '${e.name}' (${e.dir}) holds no LoRA factors`);
    const rank = Math.max(...layers.map((l) => l.r));
    if (rank > this.capacityRanks)
      throw new Error(`adapter '${e.name}' needs ${rank} rank rows but the adapter memory budget holds ${this.capacityRanks}; raise it`);
    return { rank, layers };
  }

  private load(e: Entry): void {
    const w = this.read(e);
    let offset = this.take(w.rank);
    while (offset < 0 || this.freeSlots.length === 0) {
      const victim = [...this.entries.values()].filter((x) => x.slot >= 0 && x.pins === 0).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!victim) {
        if (offset >= 0) this.give(offset, w.rank);
        throw new AdapterStoreFullError(`adapter '${e.name}' does not fit: every resident adapter is in use`);
      }
      this.unload(victim);
      this.evictions++;
      if (offset < 0) offset = this.take(w.rank);
    }
    const slot = this.freeSlots.pop()!;
    for (const pool of this.pools.values()) pool.clear(slot);
    for (const l of w.layers) l.pool.set(slot, offset, l.A, l.B, l.r, l.scale);
    Object.assign(e, { slot, offset, rank: w.rank });
    this.loads++;
  }

  private unload(e: Entry): void {
    if (e.slot < 0) return;
    for (const pool of this.pools.values()) pool.clear(e.slot);
    this.freeSlots.push(e.slot);
    this.give(e.offset, e.rank);
    Object.assign(e, { slot: -1, offset: -1, rank: 0 });
  }

  /** First fit: the start of `n` free rank rows, or −1. */
  private take(n: number): number {
    const i = this.free.findIndex(([s, end]) => end - s >= n);
    if (i < 0) return -1;
    const start = this.free[i]![0];
    this.free[i]![0] += n;
    if (this.free[i]![0] === this.free[i]![1]) this.free.splice(i, 1);
    return start;
  }

  private give(start: number, n: number): void {
    if (n === 0) return;
    this.free.push([start, start + n]);
    this.free.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const r of this.free) {
      const last = merged[merged.length - 1];
      if (last && last[1] === r[0]) last[1] = r[1];
      else merged.push([r[0], r[1]]);
    }
    this.free = merged;
  }
}
