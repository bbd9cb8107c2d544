// Target matching mirrors HF PEFT: list = exact or `.`-suffix match, string = full regex, "all-linear" = every
// linear but the head, exclude_modules, layers_to_transform / layers_pattern, rank/alpha pattern keys.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/index.js';

const cfg = (over: Partial<pj.TargetConfig>): pj.TargetConfig => ({
  target_modules: null,
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
  ...over,
});
const hit = (c: Partial<pj.TargetConfig>, key: string) => pj.checkTargetModuleExists(cfg(c), key);

describe('checkTargetModuleExists', () => {
  it('a list matches the exact name or a suffix at a dot boundary', () => {
    assert.equal(hit({ target_modules: ['q_proj'] }, 'model.layers.0.self_attn.q_proj'), true);
    assert.equal(hit({ target_modules: ['q_proj'] }, 'q_proj'), true);
    assert.equal(hit({ target_modules: ['q_proj'] }, 'model.layers.0.self_attn.xq_proj'), false);
    assert.equal(hit({ target_modules: ['self_attn.q_proj'] }, 'model.layers.0.self_attn.q_proj'), true);
    assert.equal(hit({ target_modules: ['proj'] }, 'model.layers.0.self_attn.q_proj'), false);
  });

  it('a string is a regex that must match the whole name', () => {
    assert.equal(hit({ target_modules: '.*\\.(q|v)_proj' }, 'model.layers.0.self_attn.v_proj'), true);
    assert.equal(hit({ target_modules: '.*\\.(q|v)_proj' }, 'model.layers.0.self_attn.k_proj'), false);
    assert.equal(hit({ target_modules: 'q_proj' }, 'model.layers.0.self_attn.q_proj'), false, 'no implicit suffix match for a regex');
    assert.equal(hit({ target_modules: 'model\\.layers\\.1\\..*' }, 'model.layers.1.mlp.up_proj'), true);
  });

  it('exclude_modules (list or regex) wins; modules_to_save modules are never targets', () => {
    assert.equal(hit({ target_modules: ['q_proj'], exclude_modules: ['layers.0.self_attn.q_proj'] }, 'model.layers.0.self_attn.q_proj'), 'excluded');
    assert.equal(hit({ target_modules: ['q_proj'], exclude_modules: ['layers.0.self_attn.q_proj'] }, 'model.layers.1.self_attn.q_proj'), true);
    assert.equal(hit({ target_modules: '.*_proj', exclude_modules: '.*\\.0\\..*' }, 'model.layers.0.mlp.up_proj'), 'excluded');
    assert.equal(hit({ target_modules: ['score'], modules_to_save: ['score'] }, 'score'), 'excluded');
  });

  it('layers_to_transform picks layer indices (first numbered segment), optionally after layers_pattern', () => {
    const c = { target_modules: ['q_proj'], layers_to_transform: [1, 3] };
    assert.equal(hit(c, 'model.layers.1.self_attn.q_proj'), true);
    assert.equal(hit(c, 'model.layers.2.self_attn.q_proj'), false);
    assert.equal(hit({ target_modules: ['q_proj'], layers_to_transform: 2 }, 'model.layers.2.self_attn.q_proj'), true);
    // MoE: the layer index, not the expert index, decides.
    assert.equal(hit({ target_modules: ['w1'], layers_to_transform: [1] }, 'model.layers.1.experts.0.w1'), true);
    assert.equal(hit({ target_modules: ['w1'], layers_to_transform: [0] }, 'model.layers.1.experts.0.w1'), false);
    assert.equal(hit({ target_modules: ['c_attn'], layers_to_transform: [4], layers_pattern: 'h' }, 'transformer.h.4.attn.c_attn'), true);
    assert.equal(hit({ target_modules: ['c_attn'], layers_to_transform: [4], layers_pattern: ['blocks'] }, 'transformer.h.4.attn.c_attn'), false);
  });

  it('rank/alpha pattern keys are regexes matched at the end of the name on a dot boundary', () => {
    const keys = ['down_proj', 'layers\\.1\\.self_attn\\.q_proj', '^model.layers.2.mlp.up_proj'];
    assert.equal(pj.getPatternKey(keys, 'model.layers.0.mlp.down_proj'), 'down_proj');
    assert.equal(pj.getPatternKey(keys, 'model.layers.1.self_attn.q_proj'), 'layers\\.1\\.self_attn\\.q_proj');
    assert.equal(pj.getPatternKey(keys, 'model.layers.11.self_attn.q_proj'), 'model.layers.11.self_attn.q_proj', 'no match: the name itself');
    assert.equal(pj.getPatternKey(keys, 'model.layers.0.mlp.xdown_proj'), 'model.layers.0.mlp.xdown_proj');
    assert.equal(pj.getPatternKey(keys, 'model.layers.2.mlp.up_proj'), '^model.layers.2.mlp.up_proj');
  });
});

class Tree extends pj.Module {
  put(name: string, m: pj.Module): this {
    this.addModule(name, m);
    return this;
  }
}
const lin = (o: number, i: number) => new pj.Linear(pj.keep(pj.randn([o, i], 0.1)));

/** A two-layer toy with Llama names, an embedding, a norm and an output head. */
function toy(): Tree {
  const layer = () =>
    new Tree()
      .put('self_attn', new Tree().put('q_proj', lin(8, 8)).put('v_proj', lin(8, 8)))
      .put('mlp', new Tree().put('up_proj', lin(16, 8)).put('down_proj', lin(8, 16)))
      .put('norm', new pj.RMSNorm(pj.keep(pj.zeros([8])), 1e-5));
  return new Tree()
    .put('model', new Tree().put('embed_tokens', new pj.Embedding(pj.keep(pj.randn([20, 8])))).put('layers', new pj.ModuleList([layer(), layer()])))
    .put('lm_head', lin(20, 8));
}

describe('findTargetModules / all-linear on a module tree', () => {
  it('"all-linear" is every Linear except the output head', () => {
    assert.deepEqual(pj.allLinearNames(toy()), [
      'model.layers.0.mlp.down_proj',
      'model.layers.0.mlp.up_proj',
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.mlp.down_proj',
      'model.layers.1.mlp.up_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    const peft = new pj.PeftModel(toy(), { target_modules: 'all-linear', r: 2 });
    assert.equal(peft.model.namedModules().filter(([, m]) => pj.isTunerLayer(m)).length, 8);
    assert.equal(peft.peftConfig.get('default')!.target_modules!.length, 8, 'resolved names are kept in the config, as PEFT does');
  });

  it('a config matching nothing is an error listing the module names', () => {
    assert.throws(() => new pj.PeftModel(toy(), { target_modules: ['query'] }), /matched no module.*model\.layers\.0\.self_attn\.q_proj/s);
    assert.throws(() => new pj.PeftModel(toy(), { target_modules: ['q_proj'], exclude_modules: '.*' }), /matched no module of the model \(2 matching module\(s\) were excluded/);
  });

  it('a matched module of an unsupported type is an error naming it; the model is left unchanged', () => {
    const m = toy();
    assert.throws(() => new pj.PeftModel(m, { target_modules: ['q_proj', 'norm'] }), /target module model\.layers\.0\.norm \(RMSNorm\) is not supported by LORA/);
    assert.ok(!m.namedModules().some(([, x]) => pj.isTunerLayer(x)));
  });

  it('rank_pattern / alpha_pattern set per-module rank and scaling', () => {
    const peft = new pj.PeftModel(toy(), {
      target_modules: ['q_proj', 'down_proj'],
      r: 4,
      lora_alpha: 8,
      rank_pattern: { down_proj: 2 },
      alpha_pattern: { 'layers\\.1\\.self_attn\\.q_proj': 2 },
      use_rslora: true,
    });
    const layer = (p: string) => peft.model.getModule(p) as pj.LoraLayer;
    assert.equal(layer('model.layers.0.mlp.down_proj').r.get('default'), 2);
    assert.equal(layer('model.layers.0.mlp.down_proj').scaling.get('default'), 8 / Math.sqrt(2));
    assert.equal(layer('model.layers.0.self_attn.q_proj').scaling.get('default'), 8 / 2);
    assert.equal(layer('model.layers.1.self_attn.q_proj').scaling.get('default'), 2 / 2);
  });
});
