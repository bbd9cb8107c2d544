// Prefix tuning: learned per-layer key/value prefixes through the attention kernel. Defining property: a prefix
// table holding the keys/values that prompt tuning's virtual tokens produce reproduces that model exactly (so every
// query sees every prefix position, in PEFT's (layer, k/v, head, dim) layout); gradcheck; training (plain and with
// prefix_projection); PEFT's `prompt_embeddings` key with grouped-query token_dim.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { PeftModel } from '../../../src/peft/model.js';
import { PromptTuningEmbedding } from '../../../src/peft/prompt-tuning/index.js';
import { PrefixTuningEncoder } from '../../../src/peft/prefix-tuning/index.js';
import { logits, relDiff, saveLoadRoundTrip, stories, tinyLlama, trainSteps } from './classic-helpers.js';

describe('PREFIX_TUNING', () => {
  it("a table of prompt tuning's per-layer keys/values reproduces the prompt-tuned model", () => {
    const P = 3;
    const [L, KVH, D] = [5, 4, 8];
    const pt = stories();
    new PeftModel(pt, { peft_type: 'PROMPT_TUNING', num_virtual_tokens: P });
    const want = logits(pt);
    const layer = pt.getModule('model.embed_tokens') as PromptTuningEmbedding;
    // The model's own (unhooked) forward records the virtual tokens' keys/values.
    const kv = pj.noGrad(() => layer.prefix('default', pt, Object.getPrototypeOf(pt).forward.bind(pt)));
    const table = new Float32Array(P * L * 2 * KVH * D);
    for (let l = 0; l < L; l++)
      for (const [j, t] of [kv[l]!.k, kv[l]!.v].entries()) {
        const src = pj.contiguous(t).toTyped() as Float32Array; // [1, P, KVH, D]
        for (let p = 0; p < P; p++) table.set(src.subarray(p * KVH * D, (p + 1) * KVH * D), p * L * 2 * KVH * D + (2 * l + j) * KVH * D);
      }
    const model = stories();
    const peft = new PeftModel(model, { peft_type: 'PREFIX_TUNING', num_virtual_tokens: P });
    (peft.trainableParameters()[0]!.data as Float32Array).set(table);
    assert.ok(relDiff(want, logits(model)) < 1e-5, `relative difference ${relDiff(want, logits(model))}`);
    // And the prefix does act: a zero prefix still changes attention (it takes softmax mass).
    (peft.trainableParameters()[0]!.data as Float32Array).fill(0);
    assert.ok(relDiff(peft.disableAdapters(() => logits(model)), logits(model)) > 1e-3);
  });

  it('gradcheck of the prefix table and of the projection MLP through a small Llama (f32)', () => {
    const ids = pj.tensor([1, 5, 9, 3, 7, 2], [2, 3], 'i32');
    for (const prefix_projection of [false, true]) {
      pj.manualSeed(4);
      const model = tinyLlama();
      const peft = new PeftModel(model, { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 2, prefix_projection, encoder_hidden_size: 4 });
      pj.gradcheck(() => model.forward(ids), peft.trainableParameters(), { maxPerInput: 16 });
    }
  });

  it('training lowers the loss; save → load identical (a projected prefix saves its output table)', () => {
    for (const prefix_projection of [false, true]) {
      const cfg = { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, prefix_projection };
      const model = stories();
      const peft = new PeftModel(model, cfg);
      assert.ok(model.getModule('model.embed_tokens') instanceof PrefixTuningEncoder);
      const { first, last } = trainSteps(model, peft, 15, 1e-2);
      assert.ok(last < first - 0.1, `projection ${prefix_projection}: loss ${first} → ${last}`);
      const { keys, config } = saveLoadRoundTrip(stories, cfg);
      // Grouped-query attention: token_dim = head_dim · KV heads = 8 · 4 (PEFT's _prepare_prompt_learning_config).
      assert.deepEqual([...keys], [['prompt_embeddings', [4, 5 * 2 * 32]]]);
      assert.deepEqual([config.token_dim, config.num_attention_heads, config.num_layers, config.encoder_hidden_size], [32, 4, 5, 32]);
    }
  });
});
