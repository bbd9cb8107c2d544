// Streamed (range-by-range) merges against the pure whole-tensor functions, on bf16 and f16 checkpoints whose
// values tie often in magnitude, with ranges of a few elements, so TIES/Breadcrumbs bands cross range borders; one
// tensor is larger than the selection's sample, so its bracket comes from sampled runs and its tie cuts start in
// the range the bracket pass counted them in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpointTensors, writeShardedSafetensors } from '../../src/io/sharded.js';
import type { TensorData } from '../../src/io/safetensors.js';
import { fromF32, toF32, type FloatDType } from '../../src/merge/dtype.js';
import { parseMergeConfig, runMerge } from '../../src/merge/config.js';
import { linear } from '../../src/merge/methods/linear.js';
import { taskArithmetic } from '../../src/merge/methods/task-arithmetic.js';
import { ties } from '../../src/merge/methods/ties.js';
import { breadcrumbs } from '../../src/merge/methods/breadcrumbs.js';
import { Rng } from '../helpers/random.js';

const SHAPES: [string, number[]][] = [
  ['model.embed_tokens.weight', [13, 9]],
  ['lm_head.weight', [160, 130]],
  ['model.layers.0.mlp.up_proj.weight', [10, 9]],
  ['model.layers.0.input_layernorm.weight', [9]],
  ['model.norm.weight', [1]],
];

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-chunked-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** A checkpoint of `dtype` tensors on a coarse grid (many equal magnitudes); returns the stored values in f32. */
function checkpoint(name: string, dtype: FloatDType, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const dir = join(tmp, name);
  const values = new Map<string, Float32Array>();
  const entries: [string, TensorData][] = SHAPES.map(([n, shape]) => {
    const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.round(rng.uniform(-4, 4)) / 4);
    const data = fromF32(x, dtype);
    values.set(n, toF32(data, dtype));
    return [n, { dtype, shape, data }];
  });
  writeShardedSafetensors(dir, entries, 300);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ num_hidden_layers: 1 }));
  return values;
}

/** Asserts equal values entry by entry (=== : a merge may give −0 where the pure function gives +0). */
function sameValues(got: Float32Array | undefined, want: Float32Array, what: string): void {
  assert.ok(got, `${what}: missing`);
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(got[i] === want[i], `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
}

function readAll(dir: string): Map<string, Float32Array> {
  const src = openCheckpointTensors(dir);
  const out = new Map(src.names().map((n) => [n, toF32(src.read(n), src.info(n).dtype as FloatDType)]));
  src.close();
  return out;
}

for (const dtype of ['BF16', 'F16'] as const) {
  test(`${dtype}: streamed linear, task arithmetic, TIES and Breadcrumbs in 5-element ranges equal the pure functions`, () => {
    const B = checkpoint(`base-${dtype}`, dtype, 1), A = checkpoint(`a-${dtype}`, dtype, 2), C = checkpoint(`c-${dtype}`, dtype, 3);
    const [base, a, c] = [`base-${dtype}`, `a-${dtype}`, `c-${dtype}`].map((d) => join(tmp, d));
    const cases: [string, string, (n: string) => Float32Array][] = [
      ['linear', `merge_method: linear\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${c}, parameters: {weight: 3}}\ndtype: float32\n`,
        (n) => linear([A.get(n)!, C.get(n)!], [1, 3])],
      ['task_arithmetic', `merge_method: task_arithmetic\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 0.5}}\n  - {model: ${c}, parameters: {weight: 1}}\nparameters: {lambda: 0.75}\ndtype: float32\n`,
        (n) => taskArithmetic(B.get(n)!, [A.get(n)!, C.get(n)!], { weights: [0.5, 1], lambda: 0.75 })],
      ['ties', `merge_method: ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.4}}\n  - {model: ${c}, parameters: {weight: 2, density: 0.7}}\ndtype: float32\n`,
        (n) => ties(B.get(n)!, [A.get(n)!, C.get(n)!], { weights: [1, 2], density: [0.4, 0.7] })],
      ['breadcrumbs_ties', `merge_method: breadcrumbs_ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.6, gamma: 0.1}}\n  - {model: ${c}, parameters: {weight: 1, density: 0.5, gamma: 0.2}}\ndtype: float32\n`,
        (n) => breadcrumbs(B.get(n)!, [A.get(n)!, C.get(n)!], { density: [0.6, 0.5], gamma: [0.1, 0.2], ties: true })],
    ];
    // Inputs mapped (the native default) and read into buffers.
    for (const [method, yaml, expected] of cases)
      for (const mapInputs of [undefined, false]) {
        const out = join(tmp, `${method}-${dtype}`);
        runMerge(parseMergeConfig(yaml), out, { chunkElements: 5, mapInputs });
        const got = readAll(out);
        for (const [name] of SHAPES) sameValues(got.get(name), expected(name), `${method} ${dtype} ${name} (mapInputs ${mapInputs})`);
        rmSync(out, { recursive: true });
      }
  });
}

test('streamed merges written as bf16, f16 and f64 equal the pure functions cast to that dtype', () => {
  const B = checkpoint('base-out', 'BF16', 4), A = checkpoint('a-out', 'BF16', 5), C = checkpoint('c-out', 'BF16', 6);
  const [base, a, c] = ['base-out', 'a-out', 'c-out'].map((d) => join(tmp, d));
  const cases: [string, string, (n: string) => Float32Array][] = [
    ['linear', `merge_method: linear\nmodels:\n  - {model: ${a}, parameters: {weight: 1}}\n  - {model: ${c}, parameters: {weight: 3}}\n`, (n) => linear([A.get(n)!, C.get(n)!], [1, 3])],
    ['task_arithmetic', `merge_method: task_arithmetic\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 0.5}}\n  - {model: ${c}, parameters: {weight: 1}}\n`,
      (n) => taskArithmetic(B.get(n)!, [A.get(n)!, C.get(n)!], { weights: [0.5, 1] })],
    ['ties', `merge_method: ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.4}}\n  - {model: ${c}, parameters: {weight: 2, density: 0.7}}\n`,
      (n) => ties(B.get(n)!, [A.get(n)!, C.get(n)!], { weights: [1, 2], density: [0.4, 0.7] })],
  ];
  for (const [method, yaml, expected] of cases)
    for (const [name, dtype] of [['bfloat16', 'BF16'], ['float16', 'F16'], ['float64', 'F64']] as const) {
      const out = join(tmp, `${method}-out-${dtype}`);
      runMerge(parseMergeConfig(`${yaml}dtype: ${name}\n`), out, { chunkElements: 5 });
      const got = readAll(out);
      for (const [n] of SHAPES) sameValues(got.get(n), toF32(fromF32(expected(n), dtype), dtype), `${method} → ${dtype} ${n}`);
      rmSync(out, { recursive: true });
    }
});

test('the read-ahead and write-behind workers and mapped inputs do not change the result', () => {
  const a = join(tmp, 'a-BF16'), c = join(tmp, 'c-BF16'), base = join(tmp, 'base-BF16');
  const yaml = `merge_method: ties\nbase_model: ${base}\nmodels:\n  - {model: ${a}, parameters: {weight: 1, density: 0.5}}\n  - {model: ${c}, parameters: {weight: 1, density: 0.5}}\n`;
  const outs = [true, false].map((on) => {
    const out = join(tmp, `workers-${on}`);
    runMerge(parseMergeConfig(yaml), out, { prefetch: on, writeBehind: on, mapInputs: on, chunkElements: 7 });
    return readAll(out);
  });
  assert.deepEqual(outs[0], outs[1]);
});
