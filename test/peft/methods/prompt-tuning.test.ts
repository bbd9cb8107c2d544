// Prompt tuning: P trainable embeddings in front of the input. Defining property: with TEXT init, the adapted model
// equals the base model run on [init text ++ input] (the real tokens' logits); padding masks and incremental
// decoding with a KV cache agree with the plain forward; gradcheck; training; PEFT's `prompt_embeddings` key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { loadTokenizer } from '../../../src/io/tokenizer.js';
import { PeftModel } from '../../../src/peft/model.js';
import { STORIES, idsTensor, tinyLlama, logits, relDiff, saveLoadRoundTrip, stories, storyBatch, trainSteps } from './classic-helpers.js';

const INIT = 'Tom and his cat';

describe('PROMPT_TUNING', () => {
  it('TEXT init: equals the base model run on the init text followed by the input', () => {
    const text = loadTokenizer(STORIES).encode(INIT);
    const b = storyBatch();
    const base = stories();
    const joined = { ids: [...text, ...b.ids.slice(0, b.T), ...text, ...b.ids.slice(b.T)], B: 2, T: text.length + b.T };
    const full = logits(base, joined);
    const model = stories();
    new PeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: text.length, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: INIT, tokenizer_name_or_path: STORIES });
    const got = logits(model, b);
    const V = 512;
    const want = new Float32Array(got.length);
    for (let r = 0; r < 2; r++) want.set(full.subarray((r * joined.T + text.length) * V, (r + 1) * joined.T * V), r * b.T * V);
    assert.ok(relDiff(want, got) < 1e-5, `relative difference ${relDiff(want, got)}`);
  });

  it('a padding mask of ones and incremental decoding with a KV cache match the plain forward', () => {
    const model = stories();
    new PeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 3 });
    const b = storyBatch();
    const plain = logits(model, b);
    pj.tidy(() =>
      pj.noGrad(() => {
        const masked = model.forward(idsTensor(b), { attentionMask: pj.full([2, b.T], 1, 'u8') }).toTyped() as Float32Array;
        assert.ok(relDiff(plain, masked) < 1e-6);
        const cache = model.createCache(2, b.T);
        model.forward(pj.narrow(idsTensor(b), 1, 0, b.T - 1), { cache });
        const last = model.forward(pj.contiguous(pj.narrow(idsTensor(b), 1, b.T - 1, 1)), { cache }).toTyped() as Float32Array;
        for (let r = 0; r < 2; r++) assert.ok(relDiff(plain.subarray((r * b.T + b.T - 1) * 512, (r * b.T + b.T) * 512), last.subarray(r * 512, (r + 1) * 512)) < 1e-5);
        cache.dispose();
      }),
    );
  });

  it('gradcheck of the virtual tokens through a small Llama (f32)', () => {
    pj.manualSeed(2);
    const model = tinyLlama();
    const peft = new PeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 2 });
    const ids = pj.tensor([1, 5, 9, 3, 7, 2], [2, 3], 'i32');
    pj.gradcheck(() => model.forward(ids), peft.trainableParameters(), { maxPerInput: 16 });
  });

  it('training lowers the loss; save → load identical; PEFT key and config fields', () => {
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 8 });
    assert.equal(peft.parameterCounts().trainable, 8 * 64);
    const { first, last } = trainSteps(model, peft, 15, 5e-2);
    assert.ok(last < first - 0.1, `loss ${first} → ${last}`);
    const { keys, config } = saveLoadRoundTrip(stories, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 8 });
    assert.deepEqual([...keys], [['prompt_embeddings', [8, 64]]]);
    assert.deepEqual([config.token_dim, config.num_layers, config.num_attention_heads, config.num_transformer_submodules, config.prompt_tuning_init], [64, 5, 8, 1, 'RANDOM']);
    assert.equal('target_modules' in config, false);
  });
});
