// LoRA and VeRA on the real stories260K-hf model against plain PyTorch (test/fixtures/peft/make_lora_fixtures.py):
// the adapters are PEFT-format directories written by that script; logits must match within 1e-4, merged vs
// unmerged within 1e-5, and a merged checkpoint written by peftjs must load back to the same logits. The VeRA file
// without projections (save_projection false) only matches if peftjs draws the projections PEFT draws.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { veraSharedProjections } from '../../src/peft/vera/index.js';

const BASE = '../shared/models/stories260K-hf';
const FIX = 'test/fixtures/peft';

function expected(name: string): { prompts: number[][]; logits: Float32Array[]; modules: string[] } {
  const f = SafetensorsFile.open(join(FIX, `${name}-expected.safetensors`));
  const prompts = JSON.parse(f.metadata.prompts!) as number[][];
  const out = { prompts, logits: prompts.map((_, i) => f.read(`logits.${i}`) as Float32Array), modules: JSON.parse(f.metadata.modules!) as string[] };
  f.close();
  return out;
}

function logitsOf(model: pj.PretrainedModel, ids: number[]): Float32Array {
  return pj.tidy(() => pj.noGrad(() => (model as pj.CausalLM).forward(pj.tensor(ids, [1, ids.length], 'i32')).toTyped() as Float32Array));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const name of ['stories-lora-all', 'stories-lora-rs', 'stories-vera-seed', 'stories-vera-saved']) {
  describe(`adapter parity with PyTorch: ${name}`, () => {
    const exp = expected(name);
    const base = pj.loadModel(BASE);
    const baseLogits = exp.prompts.map((p) => logitsOf(base, p));
    const peft = pj.PeftModel.fromPretrained(base, join(FIX, name));

    it('wraps exactly the modules the fixture adapted', () => {
      const wrapped = peft.model
        .namedModules()
        .filter(([, m]) => pj.isTunerLayer(m))
        .map(([n]) => n)
        .sort();
      assert.deepEqual(wrapped, exp.modules);
    });

    it('logits match the PyTorch reference within 1e-4', () => {
      exp.prompts.forEach((p, i) => {
        const d = maxDiff(logitsOf(peft.model, p), exp.logits[i]!);
        assert.ok(d < 1e-4, `prompt ${i}: max |Δ| ${d}`);
        assert.ok(maxDiff(baseLogits[i]!, exp.logits[i]!) > 1e-2, 'the adapter must change the logits');
      });
    });

    it('disableAdapters runs the base model alone (bit-identical to it)', () => {
      peft.disableAdapters(() => exp.prompts.forEach((p, i) => assert.equal(maxDiff(logitsOf(peft.model, p), baseLogits[i]!), 0)));
      assert.ok(maxDiff(logitsOf(peft.model, exp.prompts[0]!), baseLogits[0]!) > 1e-2, 'adapters are back on afterwards');
    });

    // f32 rounding of x·(W + sBA)ᵀ vs x·Wᵀ + s(xAᵀ)Bᵀ through 5 layers: ~1e-5 on logits of size ~15, so the bound
    // is 1e-5 relative to the largest logit.
    it('merged and unmerged outputs agree within 1e-5 (relative to the logit scale); unmerge restores them', () => {
      const before = exp.prompts.map((p) => logitsOf(peft.model, p));
      const tol = (i: number) => 1e-5 * Math.max(1, ...before[i]!.map(Math.abs));
      peft.merge();
      exp.prompts.forEach((p, i) => {
        const d = maxDiff(logitsOf(peft.model, p), before[i]!);
        assert.ok(d < tol(i), `merged vs unmerged, prompt ${i}: ${d} (bound ${tol(i)})`);
      });
      peft.unmerge();
      exp.prompts.forEach((p, i) => assert.ok(maxDiff(logitsOf(peft.model, p), before[i]!) < tol(i)));
    });

    it('saveMergedModel writes a plain HF checkpoint that loads to the adapted logits', () => {
      const dir = mkdtempSync(join(tmpdir(), 'peftjs-merged-'));
      try {
        peft.saveMergedModel(dir, { config: BASE });
        assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), JSON.parse(readFileSync(join(BASE, 'config.json'), 'utf8')));
        const f = SafetensorsFile.open(join(dir, 'model.safetensors'));
        const src = SafetensorsFile.open(join(BASE, 'model.safetensors'));
        assert.deepEqual(f.names().sort(), src.names().sort(), 'same tensor names as the original checkpoint (no adapter keys, tied head not repeated)');
        f.close();
        src.close();
        const merged = pj.loadModel(dir);
        exp.prompts.forEach((p, i) => assert.ok(maxDiff(logitsOf(merged, p), exp.logits[i]!) < 1e-4));
        merged.dispose();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('VeRA projections as PEFT draws them', () => {
  it('the seed regenerates the file\'s vera_A [r, max in] and vera_B [max out, r] bit for bit (torch\'s CPU generator)', () => {
    const f = SafetensorsFile.open(join(FIX, 'stories-vera-saved', 'adapter_model.safetensors'));
    const [a, b] = [f.read('base_model.vera_A') as Float32Array, f.read('base_model.vera_B') as Float32Array];
    f.close();
    const ours = veraSharedProjections(12345, 16, 64, 172); // k/o/gate_proj: in 64, out up to 172
    assert.deepEqual(ours.a, a);
    assert.deepEqual(ours.b, b);
  });

  it('re-saving the loaded adapter writes the same tensors under the same keys', () => {
    const peft = pj.PeftModel.fromPretrained(pj.loadModel(BASE), join(FIX, 'stories-vera-saved'));
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-vera-'));
    try {
      peft.save(dir);
      const [mine, theirs] = [join(dir, 'adapter_model.safetensors'), join(FIX, 'stories-vera-saved', 'adapter_model.safetensors')].map((p) => SafetensorsFile.open(p));
      assert.deepEqual(mine!.names().sort(), theirs!.names().sort());
      for (const k of theirs!.names()) assert.deepEqual(mine!.read(k), theirs!.read(k), k);
      mine!.close();
      theirs!.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// bf16 weights put ~0.1 of error on these logits already without LoRA (bf16 activations into the GEMMs); the
// adapter moves them by ~27, so the bounds below separate "LoRA applied (and merged) right" from "wrong" clearly.
describe('LoRA on a bf16 base', () => {
  it('stays close to the f32 reference and merges consistently', () => {
    const exp = expected('stories-lora-all');
    const peft = pj.PeftModel.fromPretrained(pj.loadModel(BASE, { dtype: 'bf16' }), join(FIX, 'stories-lora-all'));
    const un = logitsOf(peft.model, exp.prompts[1]!);
    assert.ok(maxDiff(un, exp.logits[1]!) < 0.5, `bf16 vs f32 reference: ${maxDiff(un, exp.logits[1]!)}`);
    peft.merge();
    const merged = logitsOf(peft.model, exp.prompts[1]!);
    assert.ok(maxDiff(merged, un) < 0.75, `merged into bf16 vs unmerged: ${maxDiff(merged, un)}`);
    assert.equal(peft.model.namedParameters().find(([n]) => n.endsWith('q_proj.base_layer.weight'))![1].dtype, 'bf16');
  });
});
