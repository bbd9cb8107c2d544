/**
 * Llama-family parity against plain-torch HF transcriptions (test/fixtures/models/make_llama_fixtures.py),
 * the llama2.c golden sample, KV-cache and batching equivalences, and loader errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pj from '../../src/index.js';
import { SafetensorsFile, writeSafetensors, type SafeArray, type TensorData } from '../../src/io/safetensors.js';

const FIX = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const SHARED = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const STORIES_BIN = join(SHARED, 'stories260K', 'stories260K.bin');
const STORIES_HF = join(SHARED, 'stories260K-hf');
const RANDOM = ['llama-untied-llama3', 'qwen2-bias-linear', 'mistral-dynamic', 'llama-yarn-bias-bf16'];

interface Expected {
  prompts: number[][];
  greedy: number[][];
}

function expected(name: string): { json: Expected; logits: Float32Array[] } {
  const json = JSON.parse(readFileSync(join(FIX, `${name}-expected.json`), 'utf8')) as Expected;
  const f = SafetensorsFile.open(join(FIX, `${name}-expected.safetensors`));
  const logits = json.prompts.map((_, i) => f.read(`logits.${i}`) as Float32Array);
  f.close();
  return { json, logits };
}

/** max|a − b| / max|b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

function logitsOf(model: pj.CausalLM, ids: number[]): Float32Array {
  return pj.tidy(() => pj.noGrad(() => model.forward(pj.tensor(ids, [1, ids.length], 'i32')).toTyped()));
}

const quiet = { onWarning: (m: string) => assert.fail(`unexpected warning: ${m}`) };

for (const [name, dir] of [['stories260K', STORIES_HF], ...RANDOM.map((n) => [n, join(FIX, n)])] as [string, string][]) {
  test(`${name}: logits match the torch reference within 1e-4 and greedy tokens are identical`, () => {
    const model = pj.loadCausalLM(dir, quiet);
    const { json, logits } = expected(name);
    json.prompts.forEach((p, i) => {
      const err = relErr(logitsOf(model, p), logits[i]!);
      assert.ok(err < 1e-4, `prompt ${i}: relative error ${err}`);
    });
    const out = pj.generate(model, null, json.prompts, { maxNewTokens: json.greedy[0]!.length, stopTokens: [] });
    assert.deepEqual(
      out.map((g) => g.ids),
      json.greedy,
    );
    model.dispose();
  });
}

test('stories260K.bin (llama2.c, interleaved RoPE) reproduces the golden greedy sample exactly', () => {
  const golden = JSON.parse(readFileSync(join(SHARED, 'stories260K', 'golden_greedy_64.json'), 'utf8'));
  const model = pj.loadCausalLM(STORIES_BIN, quiet);
  assert.equal((model.config as pj.LlamaConfig).ropeInterleaved, true);
  const [g] = pj.generate(model, null, [[golden.start_token]], { maxNewTokens: golden.steps, stopTokens: [] });
  assert.deepEqual(g!.ids, golden.generated_ids);
  // A folder holding the .bin loads the same model.
  const fromDir = pj.loadCausalLM(join(SHARED, 'stories260K'), quiet);
  assert.deepEqual(logitsOf(fromDir, [1, 403, 407]), logitsOf(model, [1, 403, 407]));
  model.dispose();
  fromDir.dispose();
});

test('the HF and llama2.c copies of stories260K give the same logits', () => {
  const hf = pj.loadCausalLM(STORIES_HF, quiet);
  const bin = pj.loadCausalLM(STORIES_BIN, quiet);
  const ids = expected('stories260K').json.prompts[1]!;
  const err = relErr(logitsOf(bin, ids), logitsOf(hf, ids));
  assert.ok(err < 1e-5, `relative error ${err}`);
  assert.deepEqual(
    hf.namedParameters().map(([n, p]) => [n, p.shape]),
    bin.namedParameters().map(([n, p]) => [n, p.shape]),
  );
  hf.dispose();
  bin.dispose();
});

test('module tree carries the HF names; tied heads have no lm_head; projections are nn.Linear', () => {
  const tied = pj.loadCausalLM(STORIES_HF, quiet);
  const names = tied.namedParameters().map(([n]) => n);
  assert.ok(names.includes('model.embed_tokens.weight'));
  assert.ok(names.includes('model.layers.4.self_attn.q_proj.weight'));
  assert.ok(names.includes('model.layers.0.mlp.down_proj.weight'));
  assert.ok(names.includes('model.norm.weight'));
  assert.ok(!names.some((n) => n.startsWith('lm_head')));
  assert.ok(tied.getModule('model.layers.2.self_attn.v_proj') instanceof pj.Linear);
  const untied = pj.loadCausalLM(join(FIX, 'llama-untied-llama3'), quiet);
  assert.ok(untied.getModule('lm_head') instanceof pj.Linear);
  const qwen = pj.loadCausalLM(join(FIX, 'qwen2-bias-linear'), quiet);
  const qn = qwen.namedParameters().map(([n]) => n);
  assert.ok(qn.includes('model.layers.0.self_attn.q_proj.bias') && !qn.includes('model.layers.0.self_attn.o_proj.bias'));
  for (const m of [tied, untied, qwen]) m.dispose();
});

test('a replaced projection module is what forward calls (LoRA wraps layers this way)', () => {
  const model = pj.loadCausalLM(STORIES_HF, quiet);
  const ids = [1, 403, 407, 261];
  const before = logitsOf(model, ids);
  const path = 'model.layers.1.mlp.up_proj';
  const orig = model.getModule(path) as pj.Linear;
  let calls = 0;
  class Spy extends pj.Linear {
    override forward(x: pj.Tensor): pj.Tensor<'f32'> {
      calls++;
      return pj.scale(super.forward(x), 2);
    }
  }
  model.setModule(path, new Spy(orig.weight, orig.bias));
  const after = logitsOf(model, ids);
  assert.equal(calls, 1);
  assert.ok(relErr(after, before) > 1e-3);
  model.dispose();
});

test('KV-cache decoding equals full recompute (batch of two, token by token after a prefill)', () => {
  // (Not dynamic NTK: there the frequencies depend on the call's length, so cached keys differ by design — the
  // mistral-dynamic greedy fixture checks that our cache matches HF's cached decoding.)
  for (const dir of [STORIES_HF, join(FIX, 'qwen2-bias-linear'), join(FIX, 'llama-yarn-bias-bf16')]) {
    const model = pj.loadCausalLM(dir, quiet);
    const V = model.config.vocabSize;
    const rows = [
      [1, 5, 9, 14, 20, 7, 3, 30, 11, 12, 40, 41, 42],
      [1, 17, 8, 21, 6, 33, 2, 19, 4, 25, 26, 27, 28],
    ];
    const T = rows[0]!.length;
    const full = pj.tidy(() => pj.noGrad(() => model.forward(pj.tensor(rows.flat(), [2, T], 'i32')).toTyped()));
    const cache = model.createCache(2, T);
    const pre = 6;
    const pieces: Float32Array[] = [];
    pj.noGrad(() => {
      for (let t = 0; t < T; t = t === 0 ? pre : t + 1) {
        const n = t === 0 ? pre : 1;
        const ids = rows.flatMap((r) => r.slice(t, t + n));
        pieces.push(pj.tidy(() => model.forward(pj.tensor(ids, [2, n], 'i32'), { cache }).toTyped()));
      }
    });
    assert.equal(cache.length, T);
    cache.dispose();
    // Reassemble [2, T, V] from the per-call [2, n, V] pieces.
    const inc = new Float32Array(2 * T * V);
    let t0 = 0;
    for (const p of pieces) {
      const n = p.length / (2 * V);
      for (let b = 0; b < 2; b++) inc.set(p.subarray(b * n * V, (b + 1) * n * V), (b * T + t0) * V);
      t0 += n;
    }
    assert.ok(relErr(inc, full) < 1e-5, `${dir}: ${relErr(inc, full)}`);
    model.dispose();
  }
});

test('left-padded batches with an attention mask give the logits of each row alone', () => {
  const model = pj.loadCausalLM(join(FIX, 'llama-untied-llama3'), quiet);
  const V = model.config.vocabSize;
  const short = [1, 50, 60];
  const long = [1, 7, 8, 9, 10, 11];
  const ids = pj.tensor([0, 0, 0, ...short, ...long], [2, 6], 'i32');
  const mask = pj.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [2, 6], 'u8');
  const both = pj.noGrad(() => model.forward(ids, { attentionMask: mask }).toTyped());
  const aShort = logitsOf(model, short);
  const aLong = logitsOf(model, long);
  assert.ok(relErr(both.subarray(3 * V, 6 * V), aShort) < 1e-5);
  assert.ok(relErr(both.subarray(6 * V, 12 * V), aLong) < 1e-5);
  model.dispose();
});

test('logitsToKeep returns only the last positions', () => {
  const model = pj.loadCausalLM(STORIES_HF, quiet);
  const ids = [1, 403, 407, 261, 378];
  const all = logitsOf(model, ids);
  const last = pj.noGrad(() => model.forward(pj.tensor(ids, [1, 5], 'i32'), { logitsToKeep: 2 }));
  assert.deepEqual(last.shape, [1, 2, 512]);
  assert.ok(relErr(last.toTyped(), all.subarray(3 * 512)) < 1e-6);
  model.dispose();
});

test('loss is the mean next-token cross-entropy and back-propagates into the weights', () => {
  const model = pj.loadCausalLM(STORIES_HF, quiet);
  const ids = [1, 403, 407, 261, 378, 432];
  const logits = logitsOf(model, ids);
  let expectedLoss = 0;
  for (let t = 0; t < 4; t++) {
    const row = logits.subarray(t * 512, (t + 1) * 512);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    expectedLoss += lse - row[ids[t + 1]!]!;
  }
  expectedLoss /= 4;
  const w = model.getModule('model.layers.0.self_attn.q_proj') as pj.Linear;
  w.weight.requiresGrad_();
  const loss = model.loss(pj.tensor(ids.slice(0, 5), [1, 5], 'i32'), pj.tensor([...ids.slice(1, 5), -100], [1, 5], 'i32'));
  assert.ok(Math.abs(loss.item() - expectedLoss) < 1e-4, `${loss.item()} vs ${expectedLoss}`);
  loss.backward();
  assert.ok(w.weight.grad && w.weight.grad.toArray().some((g) => g !== 0));
  model.dispose();
});

test('dtype bf16: matrices and embeddings in bf16, norms and biases in f32, logits close to f32', () => {
  const dir = join(FIX, 'qwen2-bias-linear');
  const f = pj.loadCausalLM(dir, quiet);
  const b = pj.loadCausalLM(dir, { ...quiet, dtype: 'bf16' });
  const dt = Object.fromEntries(b.namedParameters().map(([n, p]) => [n, p.dtype]));
  assert.equal(dt['model.embed_tokens.weight'], 'bf16');
  assert.equal(dt['model.layers.0.self_attn.q_proj.weight'], 'bf16');
  assert.equal(dt['model.layers.0.self_attn.q_proj.bias'], 'f32');
  assert.equal(dt['model.norm.weight'], 'f32');
  const ids = [1, 20, 30, 40, 50];
  const err = relErr(logitsOf(b, ids), logitsOf(f, ids));
  assert.ok(err < 3e-2 && err > 0, `bf16 vs f32 relative error ${err}`);
  f.dispose();
  b.dispose();
});

/** A copy of a random fixture in a temp folder, with its config and tensors edited. */
function editedCopy(edit: (cfg: Record<string, unknown>, tensors: Map<string, { shape: number[]; data: SafeArray }>) => void): string {
  const src = join(FIX, 'llama-untied-llama3');
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-llama-'));
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  const f = SafetensorsFile.open(join(src, 'model.safetensors'));
  const tensors = new Map(f.names().map((n) => [n, { shape: f.info(n).shape, data: f.read(n) }]));
  f.close();
  edit(cfg, tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeSafetensors(join(dir, 'model.safetensors'), [...tensors].map(([n, t]): [string, TensorData] => [n, { dtype: 'F32', shape: t.shape, data: t.data }]));
  return dir;
}

test('loader errors name the tensor, the shapes, the file and the field', () => {
  const cases: [string, string, RegExp][] = [];
  const missing = editedCopy((_, t) => t.delete('model.layers.1.mlp.up_proj.weight'));
  cases.push(['missing tensor', missing, /tensor "model\.layers\.1\.mlp\.up_proj\.weight" \(expected shape \[48, 32\]\) is missing/]);
  const shape = editedCopy((_, t) => t.set('model.norm.weight', { shape: [31], data: new Float32Array(31) }));
  cases.push(['wrong shape', shape, /tensor "model\.norm\.weight" in .*model\.safetensors has shape \[31\], but .*config\.json implies \[32\]/]);
  const unknown = editedCopy((c) => (c.model_type = 'mamba'));
  cases.push(['unknown model_type', unknown, /config\.json: model_type "mamba" is not supported \(supported: llama, mistral, qwen2/]);
  const field = editedCopy((c) => (c.num_hidden_layers = 'two'));
  cases.push(['bad field', field, /config\.json: field "num_hidden_layers" must be a positive integer; got "two"/]);
  const noField = editedCopy((c) => delete c.hidden_size);
  cases.push(['missing field', noField, /field "hidden_size" must be a positive integer; it is missing/]);
  const badScaling = editedCopy((c) => (c.rope_scaling = { rope_type: 'longrope', factor: 2 }));
  cases.push(['rope type', badScaling, /rope type "longrope" is not supported/]);
  const malformed = editedCopy(() => {});
  writeFileSync(join(malformed, 'config.json'), '{"model_type": "llama",');
  cases.push(['malformed json', malformed, /config\.json is not valid JSON/]);
  for (const [what, dir, re] of cases) {
    assert.throws(() => pj.loadModel(dir, quiet), re, what);
    rmSync(dir, { recursive: true });
  }
  const warnings: string[] = [];
  const extra = editedCopy((_, t) => t.set('model.layers.0.extra.weight', { shape: [2], data: new Float32Array(2) }));
  pj.loadModel(extra, { onWarning: (m) => warnings.push(m) }).dispose();
  assert.match(warnings.join('\n'), /1 checkpoint tensor\(s\) not used by LlamaForCausalLM: model\.layers\.0\.extra\.weight/);
  rmSync(extra, { recursive: true });
});

test('llama2.c files: truncated and versioned exports are refused with a reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-l2c-'));
  const bin = readFileSync(STORIES_BIN);
  writeFileSync(join(dir, 'cut.bin'), bin.subarray(0, bin.length - 4));
  assert.throws(() => pj.loadModel(join(dir, 'cut.bin')), /llama2\.c file is \d+ bytes but its header .* implies \d+/);
  const v1 = Buffer.from(bin);
  v1.writeUInt32LE(0x616b3432, 0);
  writeFileSync(join(dir, 'v1.bin'), v1);
  assert.throws(() => pj.loadModel(join(dir, 'v1.bin')), /versioned llama2\.c export/);
  copyFileSync(STORIES_BIN, join(dir, 'model.bin'));
  assert.throws(() => pj.loadModel(join(dir, 'nope')), /does not exist/);
  rmSync(dir, { recursive: true });
});
