// Pretraining of the embedded model's recipe at toy size: the loss falls, runs are deterministic, and the
// weights written in the HF layout load back through loadModel into the same model.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromStorage, noGrad } from '../../src/engine/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { loadCausalLM } from '../../src/models/index.js';
import { tensorData } from '../../src/peft/format.js';
import { defaultModelConfig, DEFAULT_MODEL_DIR, type PretrainRecipe } from '../../src/quickstart/default-model.js';
import { pretrain } from '../../src/quickstart/pretrain.js';

const tok = loadTokenizer(DEFAULT_MODEL_DIR);
const config = { ...defaultModelConfig(), hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 };
const recipe: PretrainRecipe = { steps: 100, batchSize: 8, seqLen: 32, lr: 1e-2, warmupSteps: 5, weightDecay: 0.01, documents: 600, seed: 9 };

describe('quickstart pretraining', () => {
  it('lowers the loss, deterministically, and saves a loadable HF checkpoint', () => {
    const a = pretrain(config, tok, recipe);
    assert.ok(a.finalLoss < a.firstLoss - 0.75 && a.finalLoss < 0.6 * Math.log(259), `loss ${a.firstLoss} → ${a.finalLoss}`);
    const b = pretrain(config, tok, { ...recipe, steps: 3 });
    const c = pretrain(config, tok, { ...recipe, steps: 3 });
    assert.deepEqual(
      b.model.namedParameters().map(([n, p]) => [n, [...p.toTyped()]]),
      c.model.namedParameters().map(([n, p]) => [n, [...p.toTyped()]]),
    );

    const dir = mkdtempSync(join(tmpdir(), 'peftjs-qs-pretrain-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeSafetensors(join(dir, 'model.safetensors'), a.model.namedParameters().map(([n, p]) => [n, tensorData(p)] as const));
    const loaded = loadCausalLM(dir);
    const ids = fromStorage(Int32Array.from(tok.encode('copy(cat)=cat')), [1, 14], 'i32');
    const [x, y] = noGrad(() => [a.model.forward(ids).toTyped(), loaded.forward(ids).toTyped()]);
    assert.deepEqual([...y!], [...x!]);
  });
});
