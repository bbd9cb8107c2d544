// The engine in-process: many concurrent requests over several adapters (different ranks and targets) and the
// base model, joining a running batch at different steps, each answered with exactly what its adapter
// generates alone; cancellation, LRU eviction under a small adapter budget, and the grouped (naive) policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { loadCausalLM } from '../../src/models/index.js';
import { createEngine, type EngineOptions } from '../../src/serve/engine.js';
import type { GenerationResult, SamplingParams } from '../../src/serve/scheduler.js';
import { aloneGreedy, makeAdapter, SPECS, STORIES } from './adapters.js';

const tokenizer = loadTokenizer(STORIES);
const dirs = SPECS.map((s) => makeAdapter(STORIES, s));
const names = dirs.map((_, i) => `a${i}`);
const PROMPTS = ['Once upon a time', 'The little dog', 'Lily saw a big'];
const N = 10;
const greedy = (maxTokens: number): SamplingParams => ({ maxTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], ignoreEos: false });

/** Each adapter's (and the base model's) greedy output for each prompt, generated alone. */
const alone = new Map<string, number[]>();
for (const [k, dir] of [[null, null] as const, ...names.map((n, i) => [n, dirs[i]!] as const)])
  for (const p of PROMPTS) alone.set(`${k}|${p}`, aloneGreedy(STORIES, tokenizer, dir, p, N));

function engine(opts: EngineOptions = {}) {
  const results = new Map<string, GenerationResult>();
  const streamed = new Map<string, number[]>();
  const errors = new Map<string, string>();
  const e = createEngine(loadCausalLM(STORIES), tokenizer, {
    token: (id, t) => streamed.set(id, [...(streamed.get(id) ?? []), t]),
    done: (r) => results.set(r.id, r),
    error: (id, status, msg) => errors.set(id, `${status} ${msg}`),
  }, { adapters: Object.fromEntries(names.map((n, i) => [n, dirs[i]!])), ...opts });
  return { e, results, streamed, errors };
}

test('the adapters are recognisably different: their outputs alone differ pairwise', () => {
  for (const p of PROMPTS) {
    const outs = [null, ...names].map((n) => alone.get(`${n}|${p}`)!.join());
    assert.equal(new Set(outs).size, outs.length, `prompt ${p}`);
  }
});

test('continuous batching over mixed adapters: every request equals its adapter alone, none lost', () => {
  const { e, results, streamed, errors } = engine({ maxBatch: 6 });
  const expected = new Map<string, number[]>();
  let n = 0;
  const submit = () => {
    const adapter = n % 5 === 4 ? null : names[n % 4]!;
    const prompt = PROMPTS[n % PROMPTS.length]!;
    const id = `r${n++}`;
    expected.set(id, alone.get(`${adapter}|${prompt}`)!);
    e.scheduler.submit({ id, adapter, promptIds: tokenizer.encode(prompt), params: greedy(N) });
  };
  for (let i = 0; i < 9; i++) submit();
  // More requests arrive while the batch runs.
  for (let step = 0; !e.scheduler.idle; step++) {
    e.scheduler.step();
    if (step % 3 === 1 && n < 30) for (let i = 0; i < 4; i++) submit();
  }
  assert.deepEqual([...errors], []);
  assert.equal(results.size, expected.size);
  for (const [id, want] of expected) {
    const r = results.get(id)!;
    assert.deepEqual(r.ids, want, `request ${id}`);
    assert.deepEqual(streamed.get(id) ?? [], r.finishReason === 'stop' ? want.slice(0, -1) : want, `streamed ${id}`);
  }
  assert.ok(e.scheduler.stats().batchRowsTotal / e.scheduler.stats().steps > 3, 'decode steps batched several rows');
});

test('cancel: a running sequence leaves at the next step and frees its slot and adapter', () => {
  const { e, results } = engine({ maxBatch: 2 });
  const ids = tokenizer.encode(PROMPTS[0]!);
  e.scheduler.submit({ id: 'x', adapter: names[0]!, promptIds: ids, params: greedy(50) });
  e.scheduler.submit({ id: 'y', adapter: names[1]!, promptIds: ids, params: greedy(N) });
  e.scheduler.submit({ id: 'z', adapter: names[2]!, promptIds: ids, params: greedy(N) });
  e.scheduler.step();
  e.scheduler.cancel('x');
  e.scheduler.cancel('z'); // still waiting: dropped at once
  assert.equal(results.get('z')!.finishReason, 'cancelled');
  while (!e.scheduler.idle) e.scheduler.step();
  assert.equal(results.get('x')!.finishReason, 'cancelled');
  assert.ok(results.get('x')!.ids.length < 50);
  assert.deepEqual(results.get('y')!.ids, alone.get(`${names[1]}|${PROMPTS[0]}`));
});

test('adapter store: a budget of 12 rank rows evicts the least recently used adapter, outputs stay right', () => {
  const { e, results, errors } = engine({ maxBatch: 2, adapterBudgetBytes: 12 * bytesPerRank() });
  const order = [0, 1, 2, 3, 0, 2];
  order.forEach((a, i) => e.scheduler.submit({ id: `q${i}`, adapter: names[a]!, promptIds: tokenizer.encode(PROMPTS[1]!), params: greedy(N) }));
  while (!e.scheduler.idle) e.scheduler.step();
  assert.deepEqual([...errors], []);
  order.forEach((a, i) => assert.deepEqual(results.get(`q${i}`)!.ids, alone.get(`${names[a]}|${PROMPTS[1]}`), `q${i}`));
  assert.ok(e.store.stats().evictions > 0, 'evicted under the budget');
  assert.ok(e.store.stats().usedRanks <= 12);
});

test('adapter store: an adapter larger than the whole budget is refused with the reason', () => {
  const { e, errors } = engine({ adapterBudgetBytes: 4 * bytesPerRank() });
  e.scheduler.submit({ id: 'big', adapter: names[1]!, promptIds: [1, 2], params: greedy(2) });
  e.scheduler.step();
  assert.match(errors.get('big')!, /^500 adapter 'a1' needs 8 rank rows but the adapter memory budget holds 4/);
});

test('grouped policy (the naive baseline) runs one adapter at a time and gives the same outputs', () => {
  const { e, results } = engine({ maxBatch: 8, policy: 'grouped' });
  const adapters = [0, 1, 0, 2, 1, 0].map((i) => names[i]!);
  adapters.forEach((a, i) => e.scheduler.submit({ id: `g${i}`, adapter: a, promptIds: tokenizer.encode(PROMPTS[2]!), params: greedy(N) }));
  e.scheduler.step();
  assert.equal(e.scheduler.stats().running, 3, 'the first group: the three requests of a0');
  while (!e.scheduler.idle) e.scheduler.step();
  adapters.forEach((a, i) => assert.deepEqual(results.get(`g${i}`)!.ids, alone.get(`${a}|${PROMPTS[2]}`)));
});

test('bad requests are reported: unknown adapter 404, too long 400, ids outside the vocabulary 400', () => {
  const { e, errors } = engine();
  e.scheduler.submit({ id: 'u', adapter: 'nope', promptIds: [1, 2], params: greedy(4) });
  e.scheduler.submit({ id: 'l', adapter: null, promptIds: [1, 2], params: greedy(100000) });
  e.scheduler.submit({ id: 'v', adapter: null, promptIds: [1, 9999], params: greedy(4) });
  assert.match(errors.get('u')!, /^404 model: no adapter 'nope'/);
  assert.match(errors.get('l')!, /^400 max_tokens: /);
  assert.match(errors.get('v')!, /^400 prompt: token id 9999/);
});

/** Bytes of one rank row over every target Linear of the stories model (in + out floats per layer). */
function bytesPerRank(): number {
  const c = loadCausalLM(STORIES).config;
  const perLayer = 2 * (c.hiddenSize + c.numHeads * c.headDim) + 2 * (c.hiddenSize + c.numKvHeads * c.headDim) + 3 * (c.hiddenSize + c.intermediateSize);
  return 4 * c.numLayers * perLayer;
}
