// PeftModel behaviour: frozen base (no grads, no optimizer state), gradients with bias="lora_only", several named
// adapters, disable / delete, modules_to_save, merge / unmerge / merge_and_unload / unload, embeddings, save/load.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pj from '../../src/index.js';

const gen = new pj.Generator(3);
const lin = (o: number, i: number, bias = true, conv = false) =>
  new pj.Linear(pj.keep(pj.randn(conv ? [i, o] : [o, i], 0.3, 0, gen)), bias ? pj.keep(pj.randn([o], 0.1, 0, gen)) : null, conv);

/** embed → q_proj → silu → down_proj (Conv1D layout) → lm_head, with a residual; Llama-like names. */
class Toy extends pj.Module {
  declare embed_tokens: pj.Embedding;
  declare q_proj: pj.Linear;
  declare down_proj: pj.Linear;
  declare lm_head: pj.Linear;
  constructor() {
    super();
    this.addModule('embed_tokens', new pj.Embedding(pj.keep(pj.randn([11, 6], 1, 0, gen))));
    this.addModule('q_proj', lin(6, 6));
    this.addModule('down_proj', lin(6, 6, true, true));
    this.addModule('lm_head', lin(11, 6, false));
  }
  forward(ids: pj.Tensor): pj.Tensor<'f32'> {
    const x = this.embed_tokens.forward(ids);
    const h = pj.add(x, this.down_proj.forward(pj.silu(this.q_proj.forward(x))));
    return this.lm_head.forward(h);
  }
}

const IDS = () => pj.tensor([1, 4, 7, 2, 9, 3], [2, 3], 'i32');
const out = (m: pj.Module) => pj.tidy(() => pj.noGrad(() => (m as Toy).forward(IDS()).toTyped() as Float32Array));
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const withWarnings = <T>(fn: () => T): [T, string[]] => {
  const w: string[] = [];
  const prev = pj.setPeftWarningHandler((m) => w.push(m));
  try {
    return [fn(), w];
  } finally {
    pj.setPeftWarningHandler(prev);
  }
};
const CFG = { target_modules: ['q_proj', 'down_proj'], r: 2, lora_alpha: 4, init_lora_weights: false } as const;

describe('PeftModel', () => {
  it('freezes the base: no base gradients, AdamW state only for LoRA tensors', () => {
    const [peft] = withWarnings(() => new pj.PeftModel(new Toy(), CFG));
    const trainable = peft.trainableParameters();
    const names = new Map(peft.namedParameters().map(([n, p]) => [p, n]));
    assert.deepEqual(trainable.map((p) => names.get(p)).sort(), [
      'down_proj.lora_A.default.weight',
      'down_proj.lora_B.default.weight',
      'q_proj.lora_A.default.weight',
      'q_proj.lora_B.default.weight',
    ]);
    const opt = new pj.AdamW(trainable, { lr: 1e-2 });
    pj.tidy(() => pj.backward(pj.crossEntropy((peft.model as Toy).forward(IDS()), pj.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'i32'))));
    for (const [n, p] of peft.namedParameters()) assert.equal(!!p.grad, n.includes('lora_'), `grad of ${n}`);
    opt.step();
    assert.equal(opt.state.size, 4);
    for (const p of opt.state.keys()) assert.match(names.get(p)!, /lora_[AB]\.default\.weight$/);
  });

  it('bias="lora_only": gradients of A, B and the adapted layer\'s bias pass gradcheck', () => {
    const [peft] = withWarnings(() => new pj.PeftModel(new Toy(), { ...CFG, bias: 'lora_only' }));
    const trainable = new Map(peft.namedParameters().filter(([, p]) => p.requiresGrad));
    assert.ok(trainable.has('q_proj.base_layer.bias') && trainable.has('down_proj.base_layer.bias') && !trainable.has('lm_head.bias'));
    assert.ok(!trainable.has('q_proj.base_layer.weight'));
    const layer = peft.model.getModule('down_proj') as pj.LoraLinear;
    const x = pj.keep(pj.randn([4, 6], 1, 0, gen));
    const inputs = ['down_proj.lora_A.default.weight', 'down_proj.lora_B.default.weight', 'down_proj.base_layer.bias'].map((n) => trainable.get(n)!);
    pj.gradcheck(() => layer.forward(x), inputs as pj.Tensor[]);
    const keys = pj.adapterStateDict(peft, 'default').map(([k]) => k);
    assert.ok(keys.includes('base_model.model.q_proj.base_layer.bias'));
  });

  it('fan_in_fan_out is fixed per layer type with a warning, as PEFT does', () => {
    const [peft, warnings] = withWarnings(() => new pj.PeftModel(new Toy(), { target_modules: ['down_proj'] }));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /down_proj is a Conv1D layer.*setting fan_in_fan_out to true/);
    assert.equal((peft.peftConfig.get('default') as pj.LoraConfig).fan_in_fan_out, true);
  });

  it('init_lora_weights: true → Kaiming-uniform A and zero B (a no-op adapter); "gaussian" → A ~ N(0, 1/r)', () => {
    const base = new Toy();
    const before = out(base);
    const peft = new pj.PeftModel(base, { target_modules: ['q_proj'], r: 4 });
    assert.equal(maxDiff(out(peft.model), before), 0);
    const [[, a], [, b]] = (peft.model.getModule('q_proj') as pj.LoraLinear).adapterTensors('default');
    assert.ok(b!.toArray().every((v) => v === 0));
    assert.ok(a!.toArray().every((v) => Math.abs(v) <= 1 / Math.sqrt(6)) && a!.toArray().some((v) => v !== 0));
    const g = new pj.PeftModel(new Toy(), { target_modules: ['lm_head'], r: 4, init_lora_weights: 'gaussian' });
    const ga = (g.model.getModule('lm_head') as pj.LoraLinear).adapterTensors('default')[0]![1].toArray();
    const std = Math.sqrt(ga.reduce((s, v) => s + v * v, 0) / ga.length);
    assert.ok(std > 0.1 && std < 0.45, `std ${std} (expected about 1/r = 0.25)`);
  });

  it('several adapters: activate one or both, disable, delete', () => {
    const base = new Toy();
    const plain = out(base);
    const [peft] = withWarnings(() => new pj.PeftModel(base, CFG));
    const first = out(peft.model);
    withWarnings(() => peft.addAdapter('other', { ...CFG, target_modules: ['q_proj'], r: 3 }));
    assert.equal(maxDiff(out(peft.model), first), 0, 'a new adapter is inactive');
    peft.setAdapter('other');
    const second = out(peft.model);
    peft.setAdapter(['default', 'other']);
    const both = out(peft.model);
    // Both adapters add onto the base output of each layer; check against merging both and running the base.
    const merged = withWarnings(() => {
      peft.merge();
      const r = out(peft.model);
      peft.unmerge();
      return r;
    })[0];
    assert.ok(maxDiff(both, merged) < 1e-5);
    assert.ok(maxDiff(both, first) > 1e-3 && maxDiff(both, second) > 1e-3);
    peft.disableAdapters(() => assert.ok(maxDiff(out(peft.model), plain) < 1e-6, 'base alone (up to merge/unmerge rounding)'));
    peft.deleteAdapter('default');
    assert.deepEqual(peft.activeAdapters, ['other']);
    assert.ok(maxDiff(out(peft.model), second) < 1e-6);
    assert.ok(!pj.isTunerLayer(peft.model.getModule('down_proj')), 'a layer left without adapters is unwrapped');
    assert.equal(peft.trainableParameters().length, 2);
  });

  it('modules_to_save: a trainable copy runs, is saved under the module name, and survives merge_and_unload', () => {
    const base = new Toy();
    const originalHead = base.lm_head;
    const plainOut = out(base);
    const [peft] = withWarnings(() => new pj.PeftModel(base, { ...CFG, modules_to_save: ['lm_head'] }));
    const wrapper = peft.model.getModule('lm_head') as pj.ModulesToSaveWrapper;
    assert.ok(wrapper instanceof pj.ModulesToSaveWrapper);
    const names = peft.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
    assert.ok(names.includes('lm_head.modules_to_save.default.weight') && !names.includes('lm_head.original_module.weight'));
    const before = out(peft.model);
    ((wrapper.copyOf('default') as pj.Linear).weight.data as Float32Array).fill(0.5);
    const after = out(peft.model);
    assert.ok(maxDiff(before, after) > 1e-3, 'the copy is what runs');
    assert.notEqual(originalHead.weight.data[0], 0.5, 'the original head is untouched');
    peft.disableAdapters(() => assert.equal(maxDiff(out(peft.model), plainOut), 0, 'disabled: the base with its original head'));
    const keys = pj.adapterStateDict(peft, 'default').map(([k]) => k);
    assert.ok(keys.includes('base_model.model.lm_head.weight'));
    const plain = withWarnings(() => peft.mergeAndUnload())[0];
    assert.ok(!plain.namedModules().some(([, m]) => pj.isTunerLayer(m) || m instanceof pj.ModulesToSaveWrapper));
    assert.ok(maxDiff(out(plain), after) < 1e-5);
  });

  it('unload removes the adapters without merging', () => {
    const base = new Toy();
    const plain = out(base);
    const [peft] = withWarnings(() => new pj.PeftModel(base, CFG));
    const m = peft.unload();
    assert.equal(maxDiff(out(m), plain), 0);
    assert.ok(m.getModule('q_proj') instanceof pj.Linear);
  });

  it('LoRA on an embedding: A [r, vocab], B [dim, r], forward equals the merged table', () => {
    const base = new Toy();
    const peft = new pj.PeftModel(base, { target_modules: ['embed_tokens'], r: 3, lora_alpha: 6, init_lora_weights: false });
    const layer = peft.model.getModule('embed_tokens') as pj.LoraEmbedding;
    const t = new Map(layer.adapterTensors('default'));
    assert.deepEqual(t.get('lora_embedding_A')!.shape, [3, 11]);
    assert.deepEqual(t.get('lora_embedding_B')!.shape, [6, 3]);
    const un = out(peft.model);
    peft.merge();
    assert.ok(maxDiff(out(peft.model), un) < 1e-5);
    peft.unmerge();
    assert.deepEqual(pj.adapterStateDict(peft, 'default').map(([k]) => k).sort(), [
      'base_model.model.embed_tokens.lora_embedding_A',
      'base_model.model.embed_tokens.lora_embedding_B',
    ]);
  });

  it('save / load round trip: default in dir, others in sub-folders; outputs reproduce', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-save-'));
    try {
      const base = new Toy();
      const fresh = new Toy(); // the same base weights for the reload
      const src = new Map(base.namedParameters());
      for (const [n, p] of fresh.namedParameters()) (p.data as Float32Array).set(src.get(n)!.data as Float32Array);
      const [peft] = withWarnings(() => new pj.PeftModel(base, { ...CFG, modules_to_save: ['lm_head'] }));
      withWarnings(() => peft.addAdapter('extra', { ...CFG, target_modules: ['q_proj'], use_rslora: true }));
      ((peft.model.getModule('lm_head') as pj.ModulesToSaveWrapper).copyOf('default')!.parameters()[0]!.data as Float32Array).fill(0.25);
      peft.save(dir);
      assert.ok(existsSync(join(dir, 'adapter_model.safetensors')) && existsSync(join(dir, 'extra', 'adapter_config.json')));
      const reloaded = withWarnings(() => pj.PeftModel.fromPretrained(fresh, dir))[0];
      withWarnings(() => reloaded.loadAdapter(join(dir, 'extra'), 'extra'));
      for (const names of [['default'], ['extra'], ['default', 'extra']]) {
        peft.setAdapter(names);
        reloaded.setAdapter(names);
        assert.equal(maxDiff(out(reloaded.model), out(peft.model)), 0, names.join('+'));
      }
      assert.equal(reloaded.parameterCounts().trainable, 0, 'loaded for inference');
      assert.equal(reloaded.printTrainableParameters().startsWith('trainable params: 0 || all params: '), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
