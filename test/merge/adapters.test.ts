import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLoraConfig, writeAdapterFiles, readAdapterConfig } from '../../src/peft/index.js';
import { writeSafetensors, type SafeArray, type TensorData } from '../../src/io/safetensors.js';
import { openCheckpointTensors } from '../../src/io/sharded.js';
import {
  catLora, svdLora, factorize, loraDelta, combineLoraDeltas, readLoraAdapter, mergeLoraAdapters, mergeAdaptersIntoBase, type LoraPair,
} from '../../src/merge/adapters.js';
import { svd } from '../../src/engine/index.js';
import { frobenius } from '../../src/merge/matrix.js';
import { ties } from '../../src/merge/methods/ties.js';
import { Rng } from '../helpers/random.js';

const rng = new Rng(21);
const OUT = 12, IN = 9;
const pair = (r: number, scale: number): LoraPair => ({ a: rng.f32(r * IN), b: rng.f32(OUT * r), r, inFeatures: IN, outFeatures: OUT, scale });
const sumDeltas = (pairs: LoraPair[], w: number[]) => {
  const acc = new Float32Array(OUT * IN);
  pairs.forEach((p, i) => loraDelta(p).forEach((v, j) => (acc[j] += w[i] * v)));
  return acc;
};
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('cat: rank Σ rᵢ and B·A is exactly Σ wᵢ sᵢ BᵢAᵢ (PEFT’s separate A/B sums are not)', () => {
  const pairs = [pair(2, 0.5), pair(3, 2)];
  const w = [0.7, -1.3];
  const cat = catLora(pairs, w);
  assert.equal(cat.r, 5);
  assert.ok(maxDiff(loraDelta(cat), sumDeltas(pairs, w)) < 1e-5);
  // PEFT #3004: with equal ranks, (Σ wᵢBᵢ)(Σ Aᵢ) carries cross terms.
  const eq = [pair(2, 1), pair(2, 1)];
  const naive: LoraPair = { ...eq[0], a: eq[0].a.map((v, i) => v + eq[1].a[i]), b: eq[0].b.map((v, i) => v + eq[1].b[i]) };
  assert.ok(maxDiff(loraDelta(naive), sumDeltas(eq, [1, 1])) > 0.1);
  assert.ok(maxDiff(loraDelta(catLora(eq, [1, 1])), sumDeltas(eq, [1, 1])) < 1e-5);
});

test('svd: the rank-k error equals the dropped singular values (Frobenius); full rank is exact', () => {
  const pairs = [pair(3, 0.5), pair(4, 1.5)];
  const w = [1, 0.6];
  const full = sumDeltas(pairs, w);
  const { s } = svd(full, OUT, IN);
  for (const k of [1, 3, 5]) {
    const err = frobenius(loraDelta(svdLora(pairs, w, k)).map((v, i) => v - full[i]));
    const dropped = Math.sqrt(s.slice(k).reduce((a, x) => a + x * x, 0));
    assert.ok(Math.abs(err - dropped) < 1e-4 * (1 + dropped), `k=${k}: error ${err} vs dropped σ ${dropped}`);
    // The factor route and the full-matrix route agree.
    const viaFull = loraDelta(factorize(full, OUT, IN, k));
    assert.ok(maxDiff(viaFull, loraDelta(svdLora(pairs, w, k))) < 1e-4);
  }
  assert.ok(maxDiff(loraDelta(svdLora(pairs, w, 7)), full) < 1e-4, 'rank Σ rᵢ reproduces ΣΔW');
});

test('TIES on ΔW = TIES of the full deltas as task vectors (zero base)', () => {
  const pairs = [pair(2, 1), pair(2, 0.5), pair(3, 1)];
  const combined = combineLoraDeltas(pairs, [1, 1, 1], 'ties', { density: 0.4 });
  assert.deepEqual(combined, ties(new Float32Array(OUT * IN), pairs.map(loraDelta), { density: 0.4 }));
});

/** Writes a PEFT LoRA folder for `modules` (name → pair) with the given config fields. */
function writeAdapter(dir: string, fields: Record<string, unknown>, modules: Record<string, { a: Float32Array; b: Float32Array; r: number }>): void {
  const config = parseLoraConfig({ peft_type: 'LORA', target_modules: ['q_proj', 'v_proj'], ...fields });
  const tensors = Object.entries(modules).flatMap(([name, p]): [string, TensorData][] => [
    [`base_model.model.${name}.lora_A.weight`, { dtype: 'F32', shape: [p.r, IN], data: p.a as SafeArray }],
    [`base_model.model.${name}.lora_B.weight`, { dtype: 'F32', shape: [OUT, p.r], data: p.b as SafeArray }],
  ]);
  writeAdapterFiles(dir, config, tensors);
}

test('adapter folders: rsLoRA and rank_pattern scales are honoured; cat and svd outputs reload with their ranks', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adapters-'));
  try {
    const q = 'model.layers.0.self_attn.q_proj', v = 'model.layers.0.self_attn.v_proj';
    const a1: Record<string, LoraPair> = { [q]: pair(4, 0), [v]: pair(2, 0) };
    const a2: Record<string, LoraPair> = { [q]: pair(3, 0), [v]: pair(3, 0) };
    // Adapter 1: r 4, α 16, rsLoRA, rank_pattern gives v_proj rank 2 with α 6 → scales 16/√4 = 8 and 6/√2.
    writeAdapter(join(tmp, 'one'), { r: 4, lora_alpha: 16, use_rslora: true, rank_pattern: { v_proj: 2 }, alpha_pattern: { v_proj: 6 } }, a1);
    writeAdapter(join(tmp, 'two'), { r: 3, lora_alpha: 6 }, a2);
    const one = readLoraAdapter(join(tmp, 'one'));
    assert.equal(one.modules.get(q)!.scale, 8);
    assert.ok(Math.abs(one.modules.get(v)!.scale - 6 / Math.SQRT2) < 1e-12);
    assert.equal(readLoraAdapter(join(tmp, 'two')).modules.get(q)!.scale, 2);
    const truth = (m: string) => {
      const s1 = m === q ? 8 : 6 / Math.SQRT2;
      return sumDeltas([{ ...a1[m], inFeatures: IN, outFeatures: OUT, scale: s1 }, { ...a2[m], inFeatures: IN, outFeatures: OUT, scale: 2 }], [0.5, 1.5]);
    };
    mergeLoraAdapters([join(tmp, 'one'), join(tmp, 'two')], [0.5, 1.5], 'cat', join(tmp, 'cat'));
    const cat = readLoraAdapter(join(tmp, 'cat'));
    assert.equal(cat.modules.get(q)!.r, 7);
    assert.equal(cat.modules.get(v)!.r, 5);
    for (const m of [q, v]) assert.ok(maxDiff(loraDelta(cat.modules.get(m)!), truth(m)) < 1e-4, `${m}: cat reloads to ΣΔW`);
    mergeLoraAdapters([join(tmp, 'one'), join(tmp, 'two')], [0.5, 1.5], 'svd', join(tmp, 'svd'), { rank: 4 });
    const sv = readLoraAdapter(join(tmp, 'svd'));
    assert.equal(readAdapterConfig(join(tmp, 'svd')).config.peft_type, 'LORA');
    for (const m of [q, v]) {
      assert.equal(sv.modules.get(m)!.r, 4);
      const full = truth(m);
      const err = frobenius(loraDelta(sv.modules.get(m)!).map((x, i) => x - full[i]));
      const s = svd(full, OUT, IN).s;
      assert.ok(Math.abs(err - Math.sqrt(s.slice(4).reduce((acc, x) => acc + x * x, 0))) < 1e-3);
    }
    mergeLoraAdapters([join(tmp, 'one'), join(tmp, 'two')], [1, 1], 'ties_svd', join(tmp, 'ties'), { density: 0.5, rank: 4 });
    assert.equal(readLoraAdapter(join(tmp, 'ties')).modules.get(q)!.r, 4);

    // Into the base: W' = W + Σ wᵢΔWᵢ; untargeted tensors unchanged.
    const W: Record<string, Float32Array> = { [`${q}.weight`]: rng.f32(OUT * IN), [`${v}.weight`]: rng.f32(OUT * IN), 'model.norm.weight': rng.f32(IN) };
    writeSafetensors(join(tmp, 'model.safetensors'), Object.fromEntries(Object.entries(W).map(([k, d]) => [k, { dtype: 'F32' as const, shape: k.includes('norm') ? [IN] : [OUT, IN], data: d as SafeArray }])));
    mergeAdaptersIntoBase(join(tmp, 'model.safetensors'), [join(tmp, 'one'), join(tmp, 'two')], [0.5, 1.5], join(tmp, 'merged'));
    const merged = openCheckpointTensors(join(tmp, 'merged'));
    for (const m of [q, v]) {
      const expected = W[`${m}.weight`].map((x, i) => x + truth(m)[i]);
      assert.ok(maxDiff(merged.read(`${m}.weight`) as Float32Array, expected) < 1e-4);
    }
    assert.deepEqual(merged.read('model.norm.weight'), W['model.norm.weight']);
    merged.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
