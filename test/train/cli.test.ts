// `peftjs train`: YAML + flags, validation errors naming the field, --help, the summary and the files it writes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { writeStories } from './stories.js';

async function capture(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error, write] = [console.log, console.error, process.stderr.write.bind(process.stderr)];
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), out: out.join('\n'), err: err.join('\n') };
  } finally {
    [console.log, console.error, process.stderr.write] = [log, error, write];
  }
}

describe('peftjs train', () => {
  it('rejects a bad field with exit code 2 and names it', async () => {
    const r = await capture(['train', '--model', 'm', '--data', 'd', '--output', 'o', '--batch-size', '0']);
    assert.equal(r.code, 2);
    assert.match(r.err, /field "batchSize" \(--batch-size\)/);
    const h = await capture(['train', '--help']);
    assert.match(h.out, /--target-modules <a,b>/);
    assert.match(h.out, /--max-steps <n>/);
  });

  it('trains from a YAML config with flag overrides and prints the summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-cli-'));
    const data = writeStories(join(dir, 's.txt'), 120, 9);
    const yaml = join(dir, 'run.yaml');
    writeFileSync(yaml, `model: ../shared/models/stories260K\ndata: ${data}\noutput: ${join(dir, 'out')}\nmax_steps: 50\nbatch_size: 4\nseq_len: 48\nlr: 0.003\nprecision: fp32\nprogress: false\n`);
    const r = await capture(['train', '--config', yaml, '--max-steps', '12', '--eval-every', '6']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /peftjs train: done/);
    assert.match(r.out, /steps +12\/12/);
    assert.match(r.out, /eval loss +[\d.]+ -> [\d.]+/);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'metrics.jsonl', 'loss_curve.svg', 'checkpoint-12/trainer_state.json', 'checkpoint-12/optimizer.safetensors'])
      assert.ok(existsSync(join(dir, 'out', f)), f);
    const cfg = JSON.parse(readFileSync(join(dir, 'out', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.target_modules], ['LORA', 8, 16, ['q_proj', 'v_proj']]);
  });
});
