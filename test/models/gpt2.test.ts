import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, tensor, tidy, withBackend, type Tensor } from '../../src/engine/index.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';
import { writeSafetensors, type TensorData } from '../../src/io/safetensors.js';
import { Linear } from '../../src/nn/index.js';
import { generate } from '../../src/models/generate.js';
import { GPT2LMHeadModel } from '../../src/models/gpt2.js';
import { loadCausalLM, type WeightDType } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/types.js';
import { backends } from '../helpers/backends.js';

const FIXTURES = new URL('../fixtures/models/', import.meta.url).pathname;
const TINY = new URL('../../../shared/models/tiny-gpt2-random/', import.meta.url).pathname;
const RANDOM = join(FIXTURES, 'gpt2-random');

interface TinyCase {
  ids: number[];
  maxAbs: number;
  columns: number[][];
  top5: number[][];
  top5Values: number[][];
  greedy: number[];
}
const tiny = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-tiny-random-expected.json'), 'utf8')) as { columns: number[]; cases: TinyCase[] };
const random = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-random-expected.json'), 'utf8')) as {
  batch: number[][];
  logits: number[][][];
  prompt: number[];
  greedy: number[];
};

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-gpt2-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** max|got − ref| / max|ref|. */
function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(got.length, ref.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return d / m;
}

function ids(rows: number[][]): Tensor {
  return tensor(rows.flat(), [rows.length, rows[0]!.length], 'i32');
}

const logitsOf = (m: CausalLM, rows: number[][]) => noGrad(() => tidy(() => m.forward(ids(rows)).toTyped() as Float32Array));
const greedy = (m: CausalLM, prompts: number[][], n: number) => generate(m, null, prompts, { maxNewTokens: n, stopTokens: [] }).map((g) => g.ids);

/** Writes `tensors` with gpt2-random's config.json as checkpoint folder `tmp/name`. */
function writeCheckpoint(name: string, tensors: [string, TensorData][]): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'config.json'), readFileSync(join(RANDOM, 'config.json')));
  return dir;
}


for (const name of backends()) {
  test(`tiny-gpt2-random: logits and greedy tokens match PyTorch (${name})`, () =>
    withBackend(name, () => {
      const m = loadCausalLM(TINY);
      const V = m.config.vocabSize;
      for (const c of tiny.cases) {
        const got = logitsOf(m, [c.ids]);
        const sampled = c.columns.flatMap((_, t) => tiny.columns.map((col) => got[t * V + col]!));
        const err = Math.max(...sampled.map((g, i) => Math.abs(g - c.columns.flat()[i]!))) / c.maxAbs;
        assert.ok(err < 1e-4, `prompt [${c.ids}]: sampled logits off by ${err} relative`);
        c.top5.forEach((top, t) => {
          const row = got.subarray(t * V, (t + 1) * V);
          assert.ok(relErr(top.map((i) => row[i]!), c.top5Values[t]!) < 1e-4);
          assert.equal(row.indexOf(Math.max(...row)), top[0], `argmax at position ${t}`);
        });
      }
      assert.deepEqual(greedy(m, tiny.cases.map((c) => c.ids), 12), tiny.cases.map((c) => c.greedy));
      m.dispose();
    }));

  test(`gpt2-random: full logits, greedy continuation and KV-cache decoding match PyTorch (${name})`, () =>
    withBackend(name, () => {
      const m = loadCausalLM(RANDOM);
      assert.ok(relErr(logitsOf(m, random.batch), random.logits.flat(2)) < 1e-4);
      assert.deepEqual(greedy(m, [random.prompt], random.greedy.length)[0], random.greedy);
      // Decoding one token at a time through the cache gives the logits of the full forward pass.
      const seq = [...random.prompt, ...random.greedy];
      const full = logitsOf(m, [seq]);
      const V = m.config.vocabSize;
      const cache = m.createCache(1, seq.length);
      noGrad(() =>
        seq.forEach((tok, t) => {
          const step = tidy(() => m.forward(ids([[tok]]), { cache }).toTyped() as Float32Array);
          assert.ok(relErr(step, full.subarray(t * V, (t + 1) * V)) < 1e-5, `cached step ${t}`);
        }),
      );
      cache.dispose();
      m.dispose();
    }));
}

test('gpt2: a batch of left-padded prompts decodes as each prompt alone', () => {
  const m = loadCausalLM(RANDOM);
  const prompts = [random.prompt, [40, 2, 9, 77, 13, 5], [88]];
  const alone = prompts.map((p) => greedy(m, [p], 8)[0]);
  assert.deepEqual(greedy(m, prompts, 8), alone);
  assert.deepEqual(alone[0], random.greedy.slice(0, 8));
  m.dispose();
});

test('gpt2: HF module names, Conv1D weights as fan-in-fan-out Linears, tied head', () => {
  const m = loadCausalLM(TINY);
  assert.ok(m instanceof GPT2LMHeadModel);
  const names = m.namedParameters().map(([n]) => n);
  assert.equal(names.length, 4 + 2 * 12); // wte, wpe, ln_f ×2; per block 4 projections ×2 + 2 norms ×2
  for (const n of ['transformer.wte.weight', 'transformer.h.1.attn.c_attn.weight', 'transformer.h.0.mlp.c_proj.bias', 'transformer.ln_f.bias'])
    assert.ok(names.includes(n), n);
  assert.ok(!names.some((n) => n.startsWith('lm_head')));
  const cAttn = m.getModule('transformer.h.0.attn.c_attn') as Linear;
  assert.ok(cAttn instanceof Linear && cAttn.fanInFanOut);
  assert.deepEqual([cAttn.inFeatures, cAttn.outFeatures, ...cAttn.weight.shape], [2, 6, 2, 6]);
  m.dispose();
});

test('gpt2: an old-layout checkpoint (no transformer. prefix, attn.bias buffers) loads under the HF names', () => {
  const warnings: string[] = [];
  const m = loadCausalLM(RANDOM, { onWarning: (w) => warnings.push(w) });
  const names = m.namedParameters().map(([n]) => n);
  assert.ok(names.length > 0 && names.every((n) => n.startsWith('transformer.')), names.join());
  assert.deepEqual(warnings, [], 'the buffers are skipped silently');
  assert.ok(relErr(logitsOf(m, random.batch), random.logits.flat(2)) < 1e-4);
  m.dispose();
});

for (const dtype of ['bf16'] as WeightDType[])
  test(`gpt2: ${dtype} weights load and stay close to the f32 logits`, () => {
    const m = loadCausalLM(RANDOM, { dtype });
    assert.equal((m.getModule('transformer.h.0.attn.c_attn') as Linear).weight.dtype, dtype);
    assert.equal(m.getModule('transformer.h.0.ln_1').param('weight')!.dtype, 'f32');
    const err = relErr(logitsOf(m, random.batch), random.logits.flat(2));
    assert.ok(err > 1e-5 && err < 3e-2, `${dtype} logits off by ${err} relative`);
    m.dispose();
  });

test('gpt2: a wrong-shaped tensor is reported with its name and both shapes', () => {
  const src = openCheckpointTensors(RANDOM);
  const bad = 'h.1.attn.c_attn.weight'; // the checkpoint's own (unprefixed) name
  const tensors: [string, TensorData][] = src.names().map((n) => {
    const info = src.info(n);
    // Stored [out, in] as an nn.Linear would be, instead of Conv1D's [in, out].
    return [n, { dtype: info.dtype, shape: n === bad ? [...info.shape].reverse() : info.shape, data: src.read(n) }];
  });
  src.close();
  const dir = writeCheckpoint('gpt2-bad-shape', tensors);
  assert.throws(() => loadCausalLM(dir), (e: Error) => e.message.includes(bad) && e.message.includes('[96, 32]') && e.message.includes('[32, 96]'));
});

test('gpt2: positions beyond n_positions are an error', () => {
  const m = loadCausalLM(RANDOM);
  assert.throws(() => noGrad(() => m.forward(ids([Array.from({ length: 33 }, () => 1)]))), /position 32 is beyond the 32 learned positions/);
  m.dispose();
});
