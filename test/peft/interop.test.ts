// The real HF PEFT adapters in ../shared/models (written by Python PEFT) load into a stand-in base model built
// from their own tensor shapes, report PEFT's config and parameter counts, and re-save byte-identically.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

const ADAPTERS = ['lora-gpt2-seqcls-anirudh', 'lora-gpt2-tigrinya-causallm', 'lora-distilbert-imdb-tashu'].map((n) => `../shared/models/${n}`);
const PREFIX = 'base_model.model.';

/** A module tree node that can take any child (the stand-in's inner modules). */
class Node extends pj.Module {
  child(name: string): pj.Module {
    const has = this.namedChildren().find(([n]) => n === name);
    return has ? has[1] : this.addModule(name, new Node());
  }
  put(name: string, m: pj.Module): void {
    this.addModule(name, m);
  }
}

function place(root: Node, path: string, m: pj.Module): void {
  const parts = path.split('.');
  let node: pj.Module = root;
  for (const p of parts.slice(0, -1)) node = (node as Node).child(p);
  (node as Node).put(parts[parts.length - 1]!, m);
}

interface StandIn {
  model: Node;
  /** Parameter count of the base (before any adapter). */
  baseCount: number;
}

/**
 * A base model with the module names and shapes the adapter implies: a Linear (Conv1D layout when
 * fan_in_fan_out) per LoRA target, the saved modules_to_save modules, and `decoys` that must stay untouched.
 * `override` changes a module's [out, in] (to build a wrong base).
 */
function standIn(dir: string, decoys: Record<string, [number, number]>, override: Record<string, [number, number]> = {}, drop: string[] = []): StandIn {
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { fan_in_fan_out: boolean };
  const f = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const linears = new Map<string, { out: number; in: number; conv: boolean }>();
  const saved = new Map<string, Map<string, number[]>>();
  for (const key of f.names()) {
    const k = key.slice(PREFIX.length);
    const shape = f.info(key).shape;
    const m = k.match(/^(.*)\.lora_([AB])\.weight$/);
    if (m) {
      const e = linears.get(m[1]!) ?? { out: 0, in: 0, conv: cfg.fan_in_fan_out };
      if (m[2] === 'A') e.in = shape[1]!;
      else e.out = shape[0]!;
      linears.set(m[1]!, e);
    } else {
      const path = k.slice(0, k.lastIndexOf('.'));
      const params = saved.get(path) ?? new Map<string, number[]>();
      params.set(k.slice(k.lastIndexOf('.') + 1), shape);
      saved.set(path, params);
    }
  }
  f.close();
  for (const [path, [o, i]] of Object.entries(decoys)) linears.set(path, { out: o, in: i, conv: cfg.fan_in_fan_out });
  const root = new Node();
  let baseCount = 0;
  const lin = (o: number, i: number, conv: boolean, bias: boolean) => {
    baseCount += o * i + (bias ? o : 0);
    return new pj.Linear(pj.keep(pj.zeros(conv ? [i, o] : [o, i])), bias ? pj.keep(pj.zeros([o])) : null, conv);
  };
  for (const [path, e] of linears) {
    if (drop.includes(path)) continue;
    const [o, i] = override[path] ?? [e.out, e.in];
    place(root, path, lin(o, i, e.conv, true));
  }
  for (const [path, params] of saved) {
    const [o, i] = params.get('weight')! as [number, number];
    place(root, path, lin(o, i, false, params.has('bias')));
  }
  return { model: root, baseCount };
}

const DECOYS: Record<string, Record<string, [number, number]>> = {
  'lora-gpt2-seqcls-anirudh': { 'transformer.h.0.attn.c_proj': [768, 768], 'transformer.h.0.mlp.c_fc': [3072, 768] },
  'lora-gpt2-tigrinya-causallm': { 'transformer.h.0.mlp.c_fc': [3072, 768], 'transformer.h.11.mlp.c_fc': [3072, 768] },
  'lora-distilbert-imdb-tashu': { 'distilbert.transformer.layer.0.attention.k_lin': [768, 768], 'distilbert.transformer.layer.3.ffn.lin1': [3072, 768] },
};

function fileTensors(path: string): Map<string, { shape: number[]; dtype: string; bytes: Buffer }> {
  const f = SafetensorsFile.open(path);
  const out = new Map<string, { shape: number[]; dtype: string; bytes: Buffer }>();
  for (const n of f.names()) {
    const d = f.read(n);
    out.set(n, { shape: f.info(n).shape, dtype: f.info(n).dtype, bytes: Buffer.from(d.buffer, d.byteOffset, d.byteLength) });
  }
  f.close();
  return out;
}

for (const dir of ADAPTERS) {
  const name = dir.split('/').pop()!;
  describe(`interop: ${name}`, () => {
    const raw = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const tensors = fileTensors(join(dir, 'adapter_model.safetensors'));
    const fileCount = [...tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);

    it('parses the config with every field PEFT wrote', () => {
      const { config } = pj.readAdapterConfig(dir);
      for (const [k, v] of Object.entries(raw)) assert.deepEqual((config as unknown as Record<string, unknown>)[k], v, `field ${k}`);
    });

    it('loads into a stand-in base; targets, counts and the loaded values are PEFT\'s', () => {
      const { model, baseCount } = standIn(dir, DECOYS[name]!);
      const peft = pj.PeftModel.fromPretrained(model, dir, { isTrainable: true });
      const wrapped = peft.model.namedModules().filter(([, m]) => pj.isTunerLayer(m)).map(([n]) => n);
      const expectedTargets = [...tensors.keys()].filter((k) => k.endsWith('.lora_A.weight')).map((k) => k.slice(PREFIX.length, -'.lora_A.weight'.length));
      assert.deepEqual(wrapped.sort(), expectedTargets.sort());
      for (const decoy of Object.keys(DECOYS[name]!)) assert.ok(!pj.isTunerLayer(peft.model.getModule(decoy)), `${decoy} must not be wrapped`);
      // PEFT counts: trainable = every adapter tensor (LoRA factors + modules_to_save copies); all = base + those.
      assert.deepEqual(peft.parameterCounts(), { trainable: fileCount, all: baseCount + fileCount });
      const line = peft.printTrainableParameters();
      assert.match(line, new RegExp(`^trainable params: ${fileCount.toLocaleString('en-US')} \\|\\| all params: ${(baseCount + fileCount).toLocaleString('en-US')} \\|\\| trainable%: \\d+\\.\\d{4}$`));
      const state = new Map(pj.adapterStateDict(peft, 'default'));
      assert.deepEqual([...state.keys()].sort(), [...tensors.keys()].sort());
      for (const [k, t] of state) assert.ok(Buffer.from((t.toTyped() as Float32Array).buffer).equals(tensors.get(k)!.bytes), `values of ${k}`);
      // Loaded for inference (PEFT's default): nothing trainable.
      const frozen = pj.PeftModel.fromPretrained(standIn(dir, DECOYS[name]!).model, dir);
      assert.equal(frozen.parameterCounts().trainable, 0);
    });

    it('re-saves byte-identical tensors and an equivalent config', () => {
      const out = mkdtempSync(join(tmpdir(), 'peftjs-interop-'));
      try {
        pj.PeftModel.fromPretrained(standIn(dir, DECOYS[name]!).model, dir).save(out);
        const again = fileTensors(join(out, 'adapter_model.safetensors'));
        assert.deepEqual([...again.keys()].sort(), [...tensors.keys()].sort());
        for (const [k, t] of tensors) {
          const g = again.get(k)!;
          assert.deepEqual([g.dtype, g.shape], [t.dtype, t.shape]);
          assert.ok(g.bytes.equals(t.bytes), `bytes of ${k}`);
        }
        // Sorted keys and the reference writer's layout: the whole file comes out identical, header included.
        assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(readFileSync(join(dir, 'adapter_model.safetensors'))), 'whole file');
        const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        for (const [k, v] of Object.entries(raw)) assert.deepEqual(saved[k], v, `config field ${k}`);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });
  });
}

describe('interop: errors and version skew', () => {
  const dir = '../shared/models/lora-gpt2-tigrinya-causallm';
  const target = 'transformer.h.3.mlp.c_proj';

  it('a wrong base: the shape error names the key and both shapes', () => {
    const { model } = standIn(dir, {}, { [target]: [768, 1024] });
    assert.throws(() => pj.PeftModel.fromPretrained(model, dir), /transformer\.h\.3\.mlp\.c_proj\.lora_A\.weight has shape \[8, 3072\] but the model's is \[8, 1024\]/);
  });

  it('a base without a targeted module: the error names the key', () => {
    const { model } = standIn(dir, {}, {}, [target]);
    assert.throws(() => pj.PeftModel.fromPretrained(model, dir), /transformer\.h\.3\.mlp\.c_proj\.lora_A\.weight .*no place in the base model/);
  });

  it('unknown config keys from a newer PEFT: ignored with one warning listing them', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peftjs-skew-'));
    const warnings: string[] = [];
    const prev = pj.setPeftWarningHandler((m) => warnings.push(m));
    try {
      const raw = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(tmp, 'adapter_config.json'), JSON.stringify({ ...raw, zeta_future_option: 3, alpha_new_thing: { a: 1 } }));
      copyFileSync(join(dir, 'adapter_model.safetensors'), join(tmp, 'adapter_model.safetensors'));
      const { config } = pj.readAdapterConfig(tmp);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /alpha_new_thing, zeta_future_option/);
      assert.ok(!('zeta_future_option' in config));
      assert.equal((config as unknown as { r: number }).r, 8);
    } finally {
      pj.setPeftWarningHandler(prev);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('summarizeAdapter reports targets, ranks and the parameter count without a base', () => {
    const s = pj.summarizeAdapter(dir);
    const t = fileTensors(join(dir, 'adapter_model.safetensors'));
    assert.equal(s.targets.length, [...t.keys()].filter((k) => k.endsWith('lora_A.weight')).length);
    assert.equal(s.parameterCount, [...t.values()].reduce((a, x) => a + x.shape.reduce((p, q) => p * q, 1), 0));
    const mlp = s.targets.find((x) => x.module === target)!;
    assert.deepEqual([mlp.r, mlp.inFeatures, mlp.outFeatures], [8, 3072, 768]);
    const text = pj.formatAdapterSummary(dir, s);
    assert.match(text, /r=8 on 36 module\(s\)/);
    assert.match(text, /"target_modules": \[/);
  });
});
