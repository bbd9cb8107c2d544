// BitFit: only biases train. Bias-less Llama is refused with a clear error; on GPT-2 every bias (attention, MLP,
// LayerNorm) gets a trainable copy; gradcheck; training lowers the loss; save → load.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { loadCausalLM } from '../../../src/models/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { BitFitLayer } from '../../../src/peft/bitfit/index.js';
import { TINY_GPT2, saveLoadRoundTrip, stories, storyBatch, trainSteps } from './classic-helpers.js';

const gpt2 = () => loadCausalLM(TINY_GPT2);

describe('BITFIT', () => {
  it('refuses a bias-less Llama, naming why and what to use instead', () => {
    assert.throws(() => new PeftModel(stories(), { peft_type: 'BITFIT' }), /has a bias.*Llama\/Mistral checkpoints have no biases/);
  });

  it('trains exactly the biases of GPT-2 (copies; the base stays frozen)', () => {
    const model = gpt2();
    const biasCount = model.namedParameters().filter(([n]) => n.endsWith('.bias')).reduce((s, [, p]) => s + p.size, 0);
    const peft = new PeftModel(model, { peft_type: 'BITFIT' });
    assert.ok(biasCount > 0);
    assert.equal(peft.parameterCounts().trainable, biasCount);
    assert.ok(peft.namedParameters().filter(([, p]) => p.requiresGrad).every(([n]) => n.endsWith('.bitfit_bias.default')));
  });

  it('gradcheck (f32)', () => {
    const gen = new pj.Generator(3);
    const layer = new BitFitLayer(new pj.Linear(pj.keep(pj.randn([4, 5], 0.5, 0, gen)), pj.keep(pj.randn([4], 0.5, 0, gen))));
    layer.addAdapter('default');
    layer.setActiveAdapters(['default'], false);
    const x = pj.keep(pj.randn([3, 5], 1, 0, gen));
    x.requiresGrad = true;
    pj.gradcheck(() => layer.forward(x), [x, layer.adapterTensors('default')[0]![1]]);
  });

  // tiny-gpt2-random has n_embd 2 and 0.02-scale weights: its logits barely move, so the drop is small but real.
  it('training lowers the loss; save → load identical', () => {
    const b = storyBatch(TINY_GPT2);
    const model = gpt2();
    const peft = new PeftModel(model, { peft_type: 'BITFIT' });
    const { first, last } = trainSteps(model, peft, 20, 0.1, b);
    assert.ok(last < first - 5e-3, `loss ${first} → ${last}`);
    const { keys } = saveLoadRoundTrip(gpt2, { peft_type: 'BITFIT' }, b);
    assert.deepEqual(keys.get('base_model.model.transformer.h.0.attn.c_attn.bitfit_bias'), [...model.getModule('transformer.h.0.attn.c_attn.base_layer').param('bias')!.shape]);
  });
});
