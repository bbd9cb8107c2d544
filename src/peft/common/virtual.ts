/**
 * Prompt learning without touching the model's code: prompt tuning and prefix tuning both amount to P extra key /
 * value positions in front of every layer's attention, which is exactly what a KV cache holding P positions is. So,
 * as PEFT passes `past_key_values`, peftjs hands the model's own forward a {@link PrefixCache}: its `length` is P
 * (plus what a real cache holds), so the real tokens sit at positions P… as in HF, and its `write` returns the
 * prefix keys / values concatenated in front of the layer's — differentiably, so gradients reach the prefix. The
 * fused attention kernel's causal rule (query t sees keys j ≤ S − T + t) then lets every query see all P prefix
 * positions. A padding mask gets P leading ones.
 *
 * - Prefix tuning: the per-layer keys / values are learned directly (`prompt_embeddings` [P, L·2·KVH·D]).
 * - Prompt tuning: the P virtual token embeddings go through the model first (a forward over them with a cache
 *   that records each layer's keys / values); causal attention means virtual tokens never see real ones, so this
 *   equals running them in front of the input, as PEFT does.
 *
 * The hook is installed by wrapping the root model instance's `forward` (once; it consults the virtual-token layer
 * at each call, so disable / unload / delete need nothing extra). A dedicated `ForwardOptions` entry in the model
 * would make this wrapping unnecessary.
 */
import { concat, expand, narrow, reshape, tensor, type Tensor } from '../../engine/index.js';
import { Embedding, type Module } from '../../nn/index.js';
import type { CausalLM, ForwardOptions, KVCache } from '../../models/types.js';
import { AdapterLayer } from './adapter-layer.js';

/** Keys and values of P virtual positions for every layer, each [1, P, KVH, D]. */
export type PrefixKV = { k: Tensor; v: Tensor }[];

/**
 * A KV cache whose first P positions are a fixed prefix, optionally in front of a real cache (generation). Only the
 * members the models use are meaningful; it has the {@link KVCache} shape.
 */
export class PrefixCache {
  readonly keys: Tensor<'f32'>[] = [];
  readonly values: Tensor<'f32'>[] = [];

  constructor(
    private readonly prefix: PrefixKV,
    private readonly inner: KVCache | null,
  ) {}

  /** Prefix positions. */
  get prefixLength(): number {
    return this.prefix[0]!.k.shape[1]!;
  }

  get length(): number {
    return this.prefixLength + (this.inner?.length ?? 0);
  }

  get batch(): number {
    return this.inner?.batch ?? 0;
  }

  get capacity(): number {
    return this.prefixLength + (this.inner?.capacity ?? Infinity);
  }

  get numKvHeads(): number {
    return this.prefix[0]!.k.shape[2]!;
  }

  get headDim(): number {
    return this.prefix[0]!.k.shape[3]!;
  }

  write(layer: number, k: Tensor, v: Tensor): { k: Tensor<'f32'>; v: Tensor<'f32'>; length: number } {
    const p = this.prefix[layer];
    if (!p) throw new Error(`PrefixCache.write: no prefix for layer ${layer} (the prefix has ${this.prefix.length} layers)`);
    const [B, , KVH, D] = k.shape as [number, number, number, number];
    const P = this.prefixLength;
    let ks = k;
    let vs = v;
    let length = k.shape[1]!;
    if (this.inner) {
      const r = this.inner.write(layer, k, v);
      ks = narrow(r.k, 1, 0, r.length);
      vs = narrow(r.v, 1, 0, r.length);
      length = r.length;
    }
    const full = (t: Tensor) => expand(t, [B, P, KVH, D]);
    return { k: concat([full(p.k), ks], 1) as Tensor<'f32'>, v: concat([full(p.v), vs], 1) as Tensor<'f32'>, length: P + length };
  }

  advance(T: number): void {
    this.inner?.advance(T);
  }

  dispose(): void {}
}

/** A cache that records each layer's keys / values of a forward over virtual tokens (nothing stored before). */
export class RecordingCache extends PrefixCache {
  readonly recorded: PrefixKV = [];

  constructor() {
    super([], null);
  }

  override get length(): number {
    return 0;
  }

  override write(layer: number, k: Tensor, v: Tensor): { k: Tensor<'f32'>; v: Tensor<'f32'>; length: number } {
    this.recorded[layer] = { k, v };
    return { k: k as Tensor<'f32'>, v: v as Tensor<'f32'>, length: k.shape[1]! };
  }
}

/** Per layer, keys and values [1, P, KVH, D] from a prefix table [P, L·2·KVH·D] laid out as PEFT's (layer, k/v, head, dim). */
export function splitPrefixTable(table: Tensor, layers: number, kvHeads: number, headDim: number): PrefixKV {
  const P = table.shape[0]!;
  const rows = reshape(table, [1, P, 2 * layers, kvHeads, headDim]);
  return Array.from({ length: layers }, (_, l) => ({
    k: reshape(narrow(rows, 2, 2 * l, 1), [1, P, kvHeads, headDim]),
    v: reshape(narrow(rows, 2, 2 * l + 1, 1), [1, P, kvHeads, headDim]),
  }));
}

/** A tuner layer on the input embedding that holds virtual-token adapters and produces their prefix. */
export abstract class VirtualTokenLayer extends AdapterLayer {
  /** While true the layer's forward returns the virtual token embeddings (prompt tuning's recording pass). */
  emitVirtual: Tensor | null = null;

  constructor(readonly base: Module & { forward(ids: Tensor): Tensor<'f32'>; readonly weight: Tensor }) {
    super(base);
  }

  /** The input table (a tied output head reads it). */
  get weight(): Tensor {
    return this.base.weight;
  }

  /** Adapter `name`'s per-layer prefix for `model`'s forward. */
  abstract prefix(name: string, model: CausalLM, original: CausalLM['forward']): PrefixKV;

  protected fold(name: string): void {
    throw new Error(`${this.method}: adapter '${name}' cannot be merged (virtual tokens are extra positions, not a weight change)`);
  }

  forward(ids: Tensor): Tensor<'f32'> {
    return (this.emitVirtual as Tensor<'f32'> | null) ?? this.base.forward(ids);
  }

  /** The active adapter, or null when the base runs alone; several active adapters are refused. */
  activeAdapter(): string | null {
    const names = this.forwardAdapters();
    if (!names?.length) return null;
    if (names.length > 1) throw new Error(`${this.method}: ${names.length} active adapters; prompt learning runs one at a time`);
    return names[0]!;
  }
}

const PATCHED = Symbol('peftjs.virtualTokens');

/** The causal LM `model` (root of the PeftModel), or an error naming what prompt learning needs. */
export function asCausalLM(model: Module, method: string): CausalLM {
  const m = model as unknown as Partial<CausalLM>;
  if (typeof m.forward !== 'function' || typeof m.createCache !== 'function' || !m.config)
    throw new Error(`${method}: prompt learning needs a causal LM with a KV cache (forward(ids, {cache}), createCache); got ${model.constructor.name}`);
  return model as CausalLM;
}

/**
 * Makes `model`'s forward prepend the prefix of the active adapter of the virtual-token layer at `path` (when there
 * is one, enabled); idempotent.
 */
export function installPrefixHook(model: CausalLM, path: string): void {
  const tagged = model as CausalLM & { [PATCHED]?: true };
  if (tagged[PATCHED]) return;
  tagged[PATCHED] = true;
  const original = model.forward.bind(model);
  model.forward = (ids: Tensor, opts: ForwardOptions = {}) => {
    const layer = model.getModule(path);
    const name = layer instanceof VirtualTokenLayer ? layer.activeAdapter() : null;
    if (!name) return original(ids, opts);
    const kv = (layer as VirtualTokenLayer).prefix(name, model, original);
    const cache = new PrefixCache(kv, opts.cache ?? null);
    let attentionMask = opts.attentionMask;
    if (attentionMask) {
      const [B, S] = attentionMask.shape as [number, number];
      const P = cache.prefixLength;
      const m = attentionMask.toTyped() as Uint8Array;
      const out = new Uint8Array(B * (P + S));
      for (let b = 0; b < B; b++) {
        out.fill(1, b * (P + S), b * (P + S) + P);
        out.set(m.subarray(b * S, (b + 1) * S), b * (P + S) + P);
      }
      attentionMask = tensor(out, [B, P + S], 'u8');
    }
    return original(ids, { ...opts, cache: cache as unknown as KVCache, attentionMask });
  };
}

/** The input-embedding module of `model` (the first Embedding, or a virtual-token layer already on it). */
export function inputEmbeddingPath(model: Module, method: string): string {
  const found = model.namedModules().find(([n, m]) => n && (m instanceof VirtualTokenLayer || m instanceof Embedding));
  if (!found) throw new Error(`${method}: the model has no input Embedding module`);
  return found[0];
}

