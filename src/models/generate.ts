/**
 * Autoregressive generation with a KV cache: a batch of prompts is left-padded to one length, prefilled in one
 * forward pass, then decoded one token per step. Greedy at temperature 0, otherwise sampling (temperature, top-k,
 * top-p, in that order, as HF's logits warpers) from a seeded engine Generator. Each step runs in `tidy()` under
 * `noGrad()`, so memory stays flat however long the generation.
 */
import { empty, Generator, noGrad, tidy, type Tensor } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from './types.js';

export interface GenerateOptions {
  /** Tokens to generate per prompt at most. */
  maxNewTokens: number;
  /** 0 (default) = greedy argmax; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Sample among the K most likely tokens only (0 or absent = all). */
  topK?: number;
  /** Sample from the smallest set of most likely tokens whose probability reaches P (1 or absent = all). */
  topP?: number;
  /** Seed of the sampling Generator (default 0). */
  seed?: number;
  /** Ids that end a row (included in its ids, not in its text); default: the model's and tokenizer's EOS ids. */
  stopTokens?: readonly number[];
  /** Strings that end a row; its text is cut before the first one (needs a tokenizer). */
  stopStrings?: readonly string[];
  /** Called for each generated token but a final stop token, with the text it adds ('' while a character is incomplete). */
  onToken?: (row: number, id: number, text: string) => void;
}

export interface Generation {
  /** The prompt's token ids. */
  promptIds: number[];
  /** Generated ids (a final stop token included). */
  ids: number[];
  /** Decoded generated text ('' without a tokenizer), cut before a stop string. */
  text: string;
  finishReason: 'stop' | 'length';
}

/** Index of the largest value of `x[from, from + n)` (the first on ties, as torch.argmax). */
function argmax(x: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[from + i]! > x[from + best]!) best = i;
  return best;
}

/** One token drawn from logits row `x[from, from + V)` after temperature, top-k and top-p. */
function sample(x: Float32Array, from: number, V: number, temperature: number, topK: number, topP: number, gen: Generator): number {
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => x[from + b]! - x[from + a]!);
  const k = topK > 0 ? Math.min(topK, V) : V;
  const max = x[from + order[0]!]!;
  const probs = new Float64Array(k);
  let total = 0;
  for (let i = 0; i < k; i++) total += probs[i] = Math.exp((x[from + order[i]!]! - max) / temperature);
  // Keep the most likely tokens until their share reaches topP (at least one).
  let keep = k;
  if (topP < 1) {
    let acc = 0;
    for (let i = 0; i < k; i++) {
      acc += probs[i]! / total;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += probs[i]!;
  let r = gen.uniform() * mass;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[keep - 1]!;
}

/** Streaming text of one row: the decoded text grows with each token; stop strings cut it. */
class RowText {
  text = '';
  constructor(
    private readonly tokenizer: Tokenizer | null,
    private readonly stopStrings: readonly string[],
  ) {}

  /** Decodes `ids` and returns the text added since last time, and whether a stop string appeared. */
  update(ids: readonly number[]): { delta: string; stopped: boolean } {
    if (!this.tokenizer) return { delta: '', stopped: false };
    let full = this.tokenizer.decode(ids, { skipSpecialTokens: true });
    // An incomplete UTF-8 sequence decodes to U+FFFD; wait for the bytes that complete it.
    if (full.endsWith('\uFFFD')) return { delta: '', stopped: false };
    // The earliest stop string that ends in the new text.
    const from = Math.max(0, this.text.length - Math.max(0, ...this.stopStrings.map((s) => s.length)));
    const hits = this.stopStrings.map((s) => full.indexOf(s, from)).filter((at) => at >= 0);
    const stopped = hits.length > 0;
    if (stopped) full = full.slice(0, Math.min(...hits));
    const delta = full.startsWith(this.text) ? full.slice(this.text.length) : full;
    this.text = full;
    return { delta, stopped };
  }
}

/**
 * Generates a continuation of every prompt (token id lists, or strings encoded with `tokenizer`).
 * @returns per prompt its ids, generated ids and text.
 */
export function generate(model: CausalLM, tokenizer: Tokenizer | null, prompts: readonly (number[] | string)[], opts: GenerateOptions): Generation[] {
  const { maxNewTokens, temperature = 0, topK = 0, topP = 1 } = opts;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!(temperature >= 0)) throw new Error(`generate: temperature must be ≥ 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new Error(`generate: topK must be a non-negative integer, got ${topK}`);
  const stopStrings = opts.stopStrings ?? [];
  if (stopStrings.length && !tokenizer) throw new Error('generate: stopStrings need a tokenizer');
  const V = model.config.vocabSize;
  const promptIds = prompts.map((p, i) => {
    if (typeof p === 'string') {
      if (!tokenizer) throw new Error(`generate: prompt ${i} is text but no tokenizer was given`);
      return tokenizer.encode(p);
    }
    return [...p];
  });
  promptIds.forEach((ids, i) => {
    if (ids.length === 0) throw new Error(`generate: prompt ${i} has no tokens (give at least a BOS token)`);
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
    if (bad !== undefined) throw new Error(`generate: prompt ${i} holds token id ${bad}, outside the vocabulary of ${V}`);
  });
  const stop = new Set(opts.stopTokens ?? [...model.config.eosTokenIds, ...(tokenizer?.eosIds ?? [])]);
  const gen = new Generator(opts.seed ?? 0);
  const B = promptIds.length;
  const P = Math.max(...promptIds.map((p) => p.length));
  const padded = promptIds.some((p) => p.length < P);
  const capacity = P + maxNewTokens;

  const results: Generation[] = promptIds.map((p) => ({ promptIds: p, ids: [], text: '', finishReason: 'length' }));
  if (B === 0 || maxNewTokens === 0) return results;
  const texts = promptIds.map(() => new RowText(tokenizer, stopStrings));
  const done = new Array<boolean>(B).fill(false);
  // Key mask over the whole capacity (row stride `capacity`); only needed when some prompt is padded.
  const mask = new Uint8Array(B * capacity).fill(1);
  const first = new Int32Array(B * P);
  promptIds.forEach((p, b) => {
    first.set(p, b * P + P - p.length);
    mask.fill(0, b * capacity, b * capacity + P - p.length);
  });

  return noGrad(() => {
    const cache = model.createCache(B, capacity);
    try {
      let input = first;
      for (let step = 0; step < maxNewTokens; step++) {
        const T = input.length / B;
        const S = cache.length + T;
        const logits = tidy(() => {
          let attentionMask: Tensor<'u8'> | undefined;
          if (padded) {
            attentionMask = empty([B, S], 'u8');
            for (let b = 0; b < B; b++) attentionMask.data.set(mask.subarray(b * capacity, b * capacity + S), b * S);
          }
          const ids = empty([B, T], 'i32');
          ids.data.set(input);
          return model.forward(ids, { cache, attentionMask, logitsToKeep: 1 }).toTyped() as Float32Array;
        });
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          if (done[b]) {
            next[b] = results[b]!.ids.at(-1)!;
            continue;
          }
          const id = temperature === 0 ? argmax(logits, b * V, V) : sample(logits, b * V, V, temperature, topK, topP, gen);
          next[b] = id;
          const r = results[b]!;
          r.ids.push(id);
          if (stop.has(id)) {
            done[b] = true;
            r.finishReason = 'stop';
            continue;
          }
          const { delta, stopped } = texts[b]!.update(r.ids);
          r.text = texts[b]!.text;
          opts.onToken?.(b, id, delta);
          if (stopped) {
            done[b] = true;
            r.finishReason = 'stop';
          }
        }
        if (done.every(Boolean)) break;
        input = next;
      }
    } finally {
      cache.dispose();
    }
    return results;
  });
}
