import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matmul, mul, sub, sum, tensor } from '../../src/engine/index.js';
import { estimateDiagonalFisher, saveFisher } from '../../src/merge/fisher.js';
import { parseMergeConfig, runMerge } from '../../src/merge/config.js';
import { fisherMerge } from '../../src/merge/methods/fisher.js';
import { regmean, gram } from '../../src/merge/methods/regmean.js';
import { linear } from '../../src/merge/methods/linear.js';
import { writeSafetensors, type SafeArray } from '../../src/io/safetensors.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';
import { Rng } from '../helpers/random.js';

test('the diagonal Fisher of a linear model with squared loss is mean((w·x − y)² x²), by autograd', () => {
  const rng = new Rng(4);
  const w0 = rng.f32(3);
  const w = tensor(w0, [3, 1]).requiresGrad_();
  const data = Array.from({ length: 6 }, () => ({ x: rng.f32(3), y: rng.normal() }));
  // −log p for y ~ N(w·x, 1), up to a constant: ½ (w·x − y)².
  const fisher = estimateDiagonalFisher([['w', w]], data, ({ x, y }) => {
    const r = sub(matmul(tensor(x, [1, 3]), w), y);
    return mul(sum(mul(r, r)), 0.5);
  });
  const expected = [0, 0, 0];
  for (const { x, y } of data) {
    const r = x.reduce((a, v, i) => a + v * w0[i], 0) - y;
    x.forEach((v, i) => (expected[i] += (r * v) ** 2 / data.length));
  }
  const f = fisher.get('w')!;
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(f[i] - expected[i]) < 1e-4 * (1 + expected[i]), `F[${i}] = ${f[i]}, expected ${expected[i]}`);
  assert.equal(w.grad, null, 'gradients are cleared afterwards');
});

test('merge_method: fisher reads per-model Fisher files and equals fisherMerge', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peftjs-fisher-'));
  try {
    const rng = new Rng(9);
    const m = [rng.f32(5), rng.f32(5)];
    const f = [rng.f32Uniform(5, 0, 2), rng.f32Uniform(5, 0, 2)];
    m.forEach((d, i) => writeSafetensors(join(tmp, `m${i}.safetensors`), { w: { dtype: 'F32', shape: [5], data: d as SafeArray } }));
    f.forEach((d, i) => saveFisher(join(tmp, `f${i}.safetensors`), new Map([['w', d]]), new Map([['w', [5]]])));
    const cfg = parseMergeConfig('merge_method: fisher\nmodels:\n  - {model: m0.safetensors, fisher: f0.safetensors, parameters: {weight: 1}}\n  - {model: m1.safetensors, fisher: f1.safetensors, parameters: {weight: 2}}\n', tmp);
    runMerge(cfg, join(tmp, 'out'));
    const src = openCheckpointTensors(join(tmp, 'out'));
    assert.deepEqual(src.read('w'), fisherMerge(m, f, { weights: [1, 2] }));
    src.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('merge_method: regmean solves linear weights that have Gram files and averages the rest', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peftjs-regmean-'));
  try {
    const rng = new Rng(10);
    const W = [rng.f32(2 * 3), rng.f32(2 * 3)], b = [rng.f32(2), rng.f32(2)];
    const G = [gram(rng.f32(8 * 3), 8, 3), gram(rng.f32(8 * 3), 8, 3)];
    [0, 1].forEach((i) => {
      writeSafetensors(join(tmp, `m${i}.safetensors`), { 'l.weight': { dtype: 'F32', shape: [2, 3], data: W[i] as SafeArray }, 'l.bias': { dtype: 'F32', shape: [2], data: b[i] as SafeArray } });
      writeSafetensors(join(tmp, `g${i}.safetensors`), { 'l.weight': { dtype: 'F32', shape: [3, 3], data: G[i] as SafeArray } });
    });
    const cfg = parseMergeConfig('merge_method: regmean\nparameters: {alpha: 0.5}\nmodels:\n  - {model: m0.safetensors, gram: g0.safetensors}\n  - {model: m1.safetensors, gram: g1.safetensors}\n', tmp);
    runMerge(cfg, join(tmp, 'out'));
    const src = openCheckpointTensors(join(tmp, 'out'));
    const expected = regmean(W, G, 2, 3, { alpha: 0.5 });
    const got = src.read('l.weight') as Float32Array;
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-5);
    assert.deepEqual(src.read('l.bias'), linear(b, [1, 1]));
    src.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
