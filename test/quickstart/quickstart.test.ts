// The quickstart pipeline at reduced size on the committed default model: the base model fails every task, the
// LoRA adapters learn them, and the adapters are written in the HF PEFT format.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runQuickstart } from '../../src/quickstart/run.js';

// Reduced size: 300 training and 20 eval examples per task (the CLI: up to 400 and 50); the CLI's default steps.
const STEPS = 200;
const THRESHOLD = 0.25;

describe('quickstart', () => {
  it('trains adapters that beat the base model on every task', async () => {
    const out = mkdtempSync(join(tmpdir(), 'peftjs-quickstart-'));
    const lines: string[] = [];
    const r = await runQuickstart({ out, steps: STEPS, nTrain: 300, nEval: 20, progress: false, print: (l) => lines.push(l) });
    assert.deepEqual(r.tasks.map((t) => t.task), ['add', 'upper', 'mood', 'json']);
    for (const t of r.tasks) {
      assert.ok(t.base.accuracy <= 0.1, `${t.task}: base accuracy ${t.base.accuracy}`);
      assert.ok(t.adapter.accuracy >= THRESHOLD && t.adapter.accuracy > t.base.accuracy, `${t.task}: adapter accuracy ${t.adapter.accuracy}`);
      assert.ok(t.finalLoss < t.firstLoss, `${t.task}: loss ${t.firstLoss} → ${t.finalLoss}`);
      const config = JSON.parse(readFileSync(join(t.adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.peft_type, 'LORA');
      assert.ok(existsSync(join(t.adapterDir, 'adapter_model.safetensors')));
      assert.equal(t.sample.adapter, t.adapter.outputs[0]);
    }
    assert.ok(lines.some((l) => /^ *task +base acc +adapter acc +trainable params +train time$/.test(l)), lines.join('\n'));
    assert.ok(existsSync(join(out, 'summary.json')));
  });
});
