// Config schema, flags and YAML; learning-rate schedules; the SVG loss curve.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromArgs, ConfigError, flagHelp, parseFlags, validateConfig } from '../../src/train/config.js';
import { learningRate } from '../../src/train/schedule.js';
import { lossCurveSvg, smooth } from '../../src/train/plot.js';

const base = { model: 'm', data: 'd.jsonl', output: 'o' };

describe('train config', () => {
  it('fills defaults and accepts snake_case / kebab-case keys', () => {
    const c = validateConfig({ ...base, seq_len: 64, 'target-modules': ['q_proj'] });
    assert.equal(c.seqLen, 64);
    assert.deepEqual(c.targetModules, ['q_proj']);
    assert.equal(c.r, 8);
    assert.equal(c.precision, 'auto');
  });

  it('errors name the field and its flag', () => {
    assert.throws(() => validateConfig({ ...base, lr: 'fast' }), (e: Error) => e instanceof ConfigError && /field "lr" \(--lr\): .*expected number.*\(got "fast"\)/.test(e.message));
    assert.throws(() => validateConfig({ ...base, batch_size: 0 }), /field "batchSize" \(--batch-size\)/);
    assert.throws(() => validateConfig({ ...base, schedule: 'exp' }), /field "schedule" \(--schedule\)/);
    assert.throws(() => validateConfig({ ...base, lerning_rate: 1 }), /unknown field "lerningRate"/);
    assert.throws(() => validateConfig({ data: 'd', output: 'o' }), /field "model" \(--model\)/);
  });

  it('parses flags: numbers, lists, booleans, --no-x, optional-value --resume', () => {
    const { fields } = parseFlags(['--lr', '3e-4', '--target-modules', 'q_proj,v_proj', '--no-packing', '--resume', '--r=4', '--gradient-checkpointing']);
    assert.deepEqual(fields, { lr: 3e-4, targetModules: ['q_proj', 'v_proj'], packing: false, resume: true, r: 4, gradientCheckpointing: true });
    assert.deepEqual(parseFlags(['--resume', 'out/checkpoint-5', '--progress', 'false']).fields, { resume: 'out/checkpoint-5', progress: false });
    assert.throws(() => parseFlags(['--lr', 'x']), /--lr: expected a number/);
    assert.throws(() => parseFlags(['--bogus', '1']), /unknown option --bogus/);
    assert.throws(() => parseFlags(['--model']), /--model needs a value/);
  });

  it('merges a YAML file with flags (flags win) and names the file in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-cfg-'));
    const y = join(dir, 'run.yaml');
    writeFileSync(y, 'model: m\ndata: [a.jsonl, b.jsonl]\noutput: o\nlearning_rate: 1\nlr: 0.001\nmax_steps: 5\n');
    assert.throws(() => configFromArgs(['--config', y]), (e: Error) => e.message.startsWith(`${y} + flags: unknown field "learningRate"`));
    writeFileSync(y, 'model: m\ndata: [a.jsonl, b.jsonl]\noutput: o\nlr: 0.001\nmax_steps: 5\n');
    const c = configFromArgs(['--config', y, '--max-steps', '7']);
    assert.deepEqual([c.lr, c.maxSteps, c.data], [0.001, 7, ['a.jsonl', 'b.jsonl']]);
    assert.match(flagHelp(), /--seq-len <n> +tokens per training row \(default 256\)/);
  });
});

describe('learning-rate schedule', () => {
  const o = { lr: 1, warmupSteps: 4, totalSteps: 14 };
  it('warms up linearly from lr/warmup, then decays to the floor', () => {
    assert.deepEqual([0, 1, 2, 3].map((s) => learningRate(s, { ...o, kind: 'linear' })), [0.25, 0.5, 0.75, 1]);
    assert.equal(learningRate(4, { ...o, kind: 'linear' }), 1);
    assert.equal(learningRate(9, { ...o, kind: 'linear' }), 0.5);
    assert.equal(learningRate(14, { ...o, kind: 'linear' }), 0);
    assert.ok(Math.abs(learningRate(9, { ...o, kind: 'cosine' }) - 0.5) < 1e-12);
    assert.ok(Math.abs(learningRate(14, { ...o, kind: 'cosine', minLrRatio: 0.1 }) - 0.1) < 1e-12);
    assert.equal(learningRate(13, { ...o, kind: 'constant' }), 1);
  });
});

describe('loss curve', () => {
  it('draws train, smoothed and eval series into an SVG', () => {
    const recs = [...Array(50).keys()].map((i) => ({ step: i + 1, loss: 3 - i * 0.02 }));
    const svg = lossCurveSvg([...recs, { step: 25, eval_loss: 2.6 }, { step: 50, eval_loss: 2.1 }]);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((svg.match(/<path /g) ?? []).length, 3);
    assert.equal((svg.match(/<circle /g) ?? []).length, 2);
    assert.deepEqual(smooth([[0, 1], [1, 3], [2, 5]], 3), [[0, 2], [1, 3], [2, 4]]);
  });
});
