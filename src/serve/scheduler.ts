/**
 * Continuous batching over one base model and many LoRA adapters (Orca-style iteration-level scheduling). Each
 * {@link Scheduler.step}: sequences that finished or were cancelled leave; waiting requests join while KV slots
 * and adapter memory allow (each is prefilled alone into its slot and samples its first token); then every
 * running sequence decodes one token in a single batched forward, whatever adapter (or none, or rank) each row
 * uses — the {@link BatchLoraLinear} layers read the per-row adapter from the routing set before the forward.
 *
 * Policy `mixed` (the default) batches any adapters together. Policy `grouped` is the naive baseline: only
 * requests of one adapter run at a time (the oldest waiting request's), the next group starting when it drains.
 */
import { Generator, noGrad, tensor, tidy, type Tensor } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/index.js';
import { AdapterStoreFullError, type AdapterStore } from './adapter-store.js';
import type { LoraRouting } from './batch-lora.js';
import type { SlotKVCache } from './kv-pool.js';

/** Sampling settings of one request (HF / OpenAI semantics). */
export interface SamplingParams {
  /** Tokens to generate at most; 0 = up to the end of the context. */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 0 = all tokens. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** Seed of this request's own Generator. */
  seed: number;
  /** Strings that end the text (cut before the first). */
  stop: string[];
  /** Keep generating past EOS tokens (benchmarks). */
  ignoreEos: boolean;
}

export interface GenerationRequest {
  id: string;
  /** Adapter name, or null for the base model. */
  adapter: string | null;
  promptIds: number[];
  params: SamplingParams;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationResult {
  id: string;
  ids: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
}

/** How the scheduler reports progress (the worker forwards these to the HTTP side). */
export interface SchedulerEvents {
  /** A generated token and the text it adds ('' while a character is incomplete or without a tokenizer). */
  token(id: string, tokenId: number, text: string): void;
  done(result: GenerationResult): void;
  /** The request failed before or during generation; `status` is the HTTP status that describes it. */
  error(id: string, status: number, message: string): void;
}

export interface SchedulerOptions {
  policy?: 'mixed' | 'grouped';
}

/** Live counts for /metrics. */
export interface SchedulerStats {
  running: number;
  waiting: number;
  slots: number;
  steps: number;
  generatedTokens: number;
  batchRowsTotal: number;
}

/** Index of the largest value of `x[from, from + n)` (the first on ties, as torch.argmax). */
function argmax(x: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[from + i]! > x[from + best]!) best = i;
  return best;
}

/** One token from logits `x[from, from + V)`: greedy at temperature 0, else temperature → top-k → top-p → draw. */
export function sampleToken(x: Float32Array, from: number, V: number, p: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>, gen: Generator): number {
  if (p.temperature === 0) return argmax(x, from, V);
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => x[from + b]! - x[from + a]!);
  const k = p.topK > 0 ? Math.min(p.topK, V) : V;
  const max = x[from + order[0]!]!;
  const probs = new Float64Array(k);
  let total = 0;
  for (let i = 0; i < k; i++) total += probs[i] = Math.exp((x[from + order[i]!]! - max) / p.temperature);
  let keep = k; // the most likely tokens until their share reaches topP (at least one)
  if (p.topP < 1) {
    let acc = 0;
    for (let i = 0; i < k && keep === k; i++) if ((acc += probs[i]! / total) >= p.topP) keep = i + 1;
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += probs[i]!;
  let r = gen.uniform() * mass;
  for (let i = 0; i < keep; i++) if ((r -= probs[i]!) < 0) return order[i]!;
  return order[keep - 1]!;
}

/** A running sequence. */
class Sequence {
  readonly ids: number[] = [];
  text = '';
  finish: FinishReason | null = null;
  readonly gen: Generator;

  constructor(
    readonly req: GenerationRequest,
    /** Adapter slot in the pools, −1 for none. */
    readonly adapterSlot: number,
  ) {
    this.gen = new Generator(req.params.seed);
  }
}

export class Scheduler {
  private readonly waiting: GenerationRequest[] = [];
  /** Running sequences; sequence i owns KV slot i. */
  private readonly running: Sequence[] = [];
  private group: string | null | undefined = undefined;
  private readonly stopIds: Set<number>;
  private steps = 0;
  private generated = 0;
  private rowsTotal = 0;
  readonly policy: 'mixed' | 'grouped';

  constructor(
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer | null,
    readonly store: AdapterStore,
    private readonly routing: LoraRouting,
    readonly cache: SlotKVCache,
    private readonly events: SchedulerEvents,
    opts: SchedulerOptions = {},
  ) {
    this.policy = opts.policy ?? 'mixed';
    this.stopIds = new Set([...model.config.eosTokenIds, ...(tokenizer?.eosIds ?? [])]);
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  stats(): SchedulerStats {
    return { running: this.running.length, waiting: this.waiting.length, slots: this.cache.slots, steps: this.steps, generatedTokens: this.generated, batchRowsTotal: this.rowsTotal };
  }

  /** Queues a request; problems with it (prompt too long, ids outside the vocabulary, unknown adapter) are reported as errors. */
  submit(req: GenerationRequest): void {
    const V = this.model.config.vocabSize;
    const bad = req.promptIds.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
    if (req.promptIds.length === 0) return this.events.error(req.id, 400, 'prompt: the prompt has no tokens');
    if (bad !== undefined) return this.events.error(req.id, 400, `prompt: token id ${bad} is outside the vocabulary of ${V}`);
    const cap = this.cache.capacity;
    if (req.params.maxTokens === 0) req = { ...req, params: { ...req.params, maxTokens: Math.max(1, cap - req.promptIds.length) } };
    if (req.promptIds.length + req.params.maxTokens > cap)
      return this.events.error(req.id, 400, `max_tokens: the prompt (${req.promptIds.length} tokens) plus max_tokens (${req.params.maxTokens}) exceeds the context of ${cap} tokens`);
    if (req.adapter !== null && !this.store.has(req.adapter)) return this.events.error(req.id, 404, `model: no adapter '${req.adapter}'`);
    this.waiting.push(req);
  }

  /** Cancels request `id` (waiting: dropped; running: leaves at the next step); reports it done with 'cancelled'. */
  cancel(id: string): void {
    const w = this.waiting.findIndex((r) => r.id === id);
    if (w >= 0) {
      const [req] = this.waiting.splice(w, 1);
      this.events.done({ id, ids: [], text: '', finishReason: 'cancelled', promptTokens: req!.promptIds.length });
      return;
    }
    const s = this.running.find((q) => q.req.id === id);
    if (s && !s.finish) s.finish = 'cancelled';
  }

  /** One scheduling iteration; returns the number of tokens generated. */
  step(): number {
    return noGrad(() => {
      this.retire();
      let made = this.admit();
      this.retire();
      if (this.running.length > 0) made += this.decode();
      this.retire();
      this.steps++;
      this.generated += made;
      return made;
    });
  }

  /**
   * Moves waiting requests into free slots, then prefills them — those with equal prompt lengths together in one
   * forward — and samples their first tokens.
   */
  private admit(): number {
    if (this.running.length === 0) this.group = undefined;
    const admitted: Sequence[] = [];
    for (let i = 0; i < this.waiting.length && this.running.length + admitted.length < this.cache.slots; ) {
      const req = this.waiting[i]!;
      if (this.policy === 'grouped') {
        if (this.group === undefined) this.group = req.adapter;
        if (req.adapter !== this.group) {
          i++;
          continue;
        }
      }
      let slot = -1;
      try {
        if (req.adapter !== null) slot = this.store.acquire(req.adapter);
      } catch (e) {
        if (e instanceof AdapterStoreFullError) break; // retried when running sequences release adapters
        this.waiting.splice(i, 1);
        this.events.error(req.id, this.store.has(req.adapter!) ? 500 : 404, (e as Error).message);
        continue;
      }
      this.waiting.splice(i, 1);
      admitted.push(new Sequence(req, slot));
    }
    admitted.sort((a, b) => a.req.promptIds.length - b.req.promptIds.length);
    for (let i = 0; i < admitted.length; ) {
      const T = admitted[i]!.req.promptIds.length;
      let j = i;
      while (j < admitted.length && admitted[j]!.req.promptIds.length === T) j++;
      this.prefill(admitted.slice(i, j));
      i = j;
    }
    return admitted.length;
  }

  /** Runs the prompts of `seqs` (all of one length) into the next free KV slots and samples their first tokens. */
  private prefill(seqs: Sequence[]): void {
    const B = seqs.length;
    const T = seqs[0]!.req.promptIds.length;
    const first = this.running.length;
    this.running.push(...seqs);
    this.cache.lengths.fill(0, first, first + B);
    this.cache.select(first, B);
    this.routing.set(seqs.map((s) => s.adapterSlot), T);
    const logits = tidy(() => {
      const ids = tensor(seqs.flatMap((s) => s.req.promptIds), [B, T], 'i32');
      const positions = tensor(Int32Array.from({ length: B * T }, (_, i) => i % T), [B, T], 'i32');
      return this.model.forward(ids, { cache: this.cache, positions, logitsToKeep: 1 }).toTyped() as Float32Array;
    });
    seqs.forEach((s, b) => this.accept(s, logits, b));
  }

  /** One token for every running sequence in one batched forward. */
  private decode(): number {
    const B = this.running.length;
    const lens = this.cache.select(0, B);
    this.routing.set(this.running.map((s) => s.adapterSlot), 1);
    const logits = tidy(() => {
      const ids = tensor(this.running.map((s) => s.ids[s.ids.length - 1]!), [B, 1], 'i32');
      const positions = tensor(Int32Array.from(lens), [B, 1], 'i32');
      const m = this.cache.keyMask(1);
      const attentionMask: Tensor | undefined = m ? tensor(m, [B, this.cache.length + 1], 'u8') : undefined;
      return this.model.forward(ids, { cache: this.cache, positions, attentionMask, logitsToKeep: 1 }).toTyped() as Float32Array;
    });
    this.rowsTotal += B;
    this.running.forEach((s, b) => this.accept(s, logits, b));
    return B;
  }

  /** Samples row `b` of `logits` for `seq`, reports the token, and marks the sequence finished when it should stop. */
  private accept(seq: Sequence, logits: Float32Array, b: number): void {
    const V = this.model.config.vocabSize;
    const p = seq.req.params;
    const id = sampleToken(logits, b * V, V, p, seq.gen);
    seq.ids.push(id);
    if (!p.ignoreEos && this.stopIds.has(id)) {
      seq.finish = 'stop';
      return;
    }
    const { delta, stopped } = this.textDelta(seq);
    this.events.token(seq.req.id, id, delta);
    if (stopped) seq.finish = 'stop';
    else if (seq.ids.length >= p.maxTokens) seq.finish = 'length';
  }

  /** The text `seq`'s newest token adds, cut before a stop string (which ends the sequence). */
  private textDelta(seq: Sequence): { delta: string; stopped: boolean } {
    if (!this.tokenizer) return { delta: '', stopped: false };
    let full = this.tokenizer.decode(seq.ids, { skipSpecialTokens: true });
    if (full.endsWith('\uFFFD')) return { delta: '', stopped: false }; // an incomplete UTF-8 sequence: wait
    const stops = seq.req.params.stop;
    const from = Math.max(0, seq.text.length - Math.max(0, ...stops.map((s) => s.length)));
    const hits = stops.map((s) => full.indexOf(s, from)).filter((at) => at >= 0);
    if (hits.length) full = full.slice(0, Math.min(...hits));
    const delta = full.startsWith(seq.text) ? full.slice(seq.text.length) : '';
    seq.text = full;
    return { delta, stopped: hits.length > 0 };
  }

  /** Finished sequences leave: their slot goes to the last running one, their adapter is released. */
  private retire(): void {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const s = this.running[i]!;
      if (!s.finish) continue;
      const last = this.running.length - 1;
      this.cache.release(i, last);
      this.running[i] = this.running[last]!;
      this.running.pop();
      if (s.req.adapter !== null) this.store.release(s.req.adapter);
      this.events.done({ id: s.req.id, ids: s.ids, text: s.text, finishReason: s.finish, promptTokens: s.req.promptIds.length });
    }
  }
}
