// `--method` / `--method-config` map onto the HF PEFT config of any registered method.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configFromArgs } from '../../src/train/config.js';
import { peftConfig } from '../../src/train/trainer.js';

const base = ['--model', 'm', '--data', 'd.jsonl', '--output', 'o'];

describe('peftConfig', () => {
  it('LoRA takes the rank, alpha, dropout and target flags', () => {
    const c = peftConfig(configFromArgs([...base, '--r', '4', '--alpha', '8', '--target-modules', 'q_proj,k_proj']));
    assert.equal(c.peft_type, 'LORA');
    assert.equal(c.r, 4);
    assert.equal(c.lora_alpha, 8);
    assert.deepEqual(c.target_modules, ['q_proj', 'k_proj']);
  });

  it('other methods get their fields from --method-config, which overrides everything', () => {
    const c = peftConfig(configFromArgs([...base, '--method', 'ia3', '--method-config', '{"feedforward_modules":["down_proj"],"target_modules":["down_proj"]}']));
    assert.equal(c.peft_type, 'IA3');
    assert.equal(c.r, undefined);
    assert.deepEqual(c.feedforward_modules, ['down_proj']);
    assert.deepEqual(c.target_modules, ['down_proj']);
  });

  it('methods that choose their own targets get no target_modules; hyphens map to underscores', () => {
    const c = peftConfig(configFromArgs([...base, '--method', 'prompt-tuning', '--method-config', '{"num_virtual_tokens":4}']));
    assert.equal(c.peft_type, 'PROMPT_TUNING');
    assert.equal(c.target_modules, undefined);
    assert.equal(c.num_virtual_tokens, 4);
  });

  it('bad JSON and unknown methods are errors naming the flag or the method', () => {
    assert.throws(() => configFromArgs([...base, '--method-config', '{oops']), /--method-config: expected JSON/);
    assert.throws(() => peftConfig(configFromArgs([...base, '--method', 'nope'])), /unknown peft_type "NOPE"/);
  });
});
