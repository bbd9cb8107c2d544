// Resume: a `peftjs train` run killed (SIGKILL) or interrupted (SIGINT) in the middle and continued with --resume
// ends with the same adapter (within 1e-6) and the same loss curve as an uninterrupted run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { train } from '../../src/train/trainer.js';
import { writeStories } from './stories.js';

const dir = mkdtempSync(join(tmpdir(), 'peftjs-resume-'));
const data = writeStories(join(dir, 'stories.txt'), 300, 5);
const STEPS = 60;
const flags = {
  model: '../shared/models/stories260K',
  data,
  maxSteps: STEPS,
  saveEvery: 10,
  batchSize: 8,
  seqLen: 64,
  lr: 3e-3,
  warmupSteps: 5,
  loraDropout: 0.1,
  evalSplit: 0,
  precision: 'fp32' as const,
  progress: false,
};
const argv = (output: string) => [
  'bin/peftjs.js',
  'train',
  ...Object.entries({ ...flags, output }).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(v)]),
];

function adapter(output: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(join(output, 'adapter_model.safetensors'));
  const m = new Map(f.names().map((n) => [n, f.read(n) as Float32Array]));
  f.close();
  return m;
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  let worst = 0;
  for (const [k, x] of a) x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.get(k)![i]!))));
  return worst;
}

const curve = (output: string) => new MetricsLog(join(output, 'metrics.jsonl')).read().map((r) => [r.step, r.loss]);

/** Starts a CLI run and calls `act` on it once `checkpoint-<step>` exists. */
function runUntil(output: string, step: number, act: (c: ChildProcess) => void): Promise<number | null> {
  const child = spawn(process.execPath, argv(output), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setInterval(() => {
    if (existsSync(join(output, `checkpoint-${step}`))) {
      clearInterval(timer);
      act(child);
    }
  }, 2);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== null && code !== 130) console.error(stderr);
      resolve(code);
    }),
  );
}

describe('resume', () => {
  it('killed or interrupted runs continued with --resume match an uninterrupted run', async (t) => {
    const straight = join(dir, 'straight');
    await train({ ...flags, output: straight }, { log: () => {} });
    const reference = adapter(straight);

    // SIGKILL right after checkpoint-20 appears: nothing of the run's end may exist yet.
    const killed = join(dir, 'killed');
    const killCode = await runUntil(killed, 20, (c) => c.kill('SIGKILL'));
    assert.equal(killCode, null, 'the process died of the signal');
    assert.ok(!existsSync(join(killed, 'adapter_model.safetensors')), 'the run was killed before it finished');
    const resumed = spawnSync(process.execPath, [...argv(killed), '--resume'], { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed from .*checkpoint-(\d+) at step \1/);
    const killDiff = maxDiff(reference, adapter(killed));
    assert.ok(killDiff <= 1e-6, `adapter differs by ${killDiff}`);
    assert.deepEqual(curve(killed), curve(straight));
    assert.ok(!readdirSync(killed).some((f) => f.startsWith('.tmp')), 'no temporary folder is left behind');

    // Ctrl-C: the run saves a checkpoint at the step it is in and exits with 130.
    const interrupted = join(dir, 'interrupted');
    const intCode = await runUntil(interrupted, 10, (c) => c.kill('SIGINT'));
    assert.equal(intCode, 130);
    const again = spawnSync(process.execPath, [...argv(interrupted), '--resume'], { encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    const intDiff = maxDiff(reference, adapter(interrupted));
    assert.ok(intDiff <= 1e-6, `adapter differs by ${intDiff}`);
    assert.deepEqual(curve(interrupted), curve(straight));
    t.diagnostic(`max |Δ| of the adapter after kill+resume: ${killDiff}, after Ctrl-C+resume: ${intDiff}`);
  });
});
