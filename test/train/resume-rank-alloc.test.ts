// Resume with a rank allocator: an AdaLoRA / IncreLoRA run interrupted mid-schedule and continued with
// `resume: true` ends with the same adapter, bit for bit, and the same loss curve as an uninterrupted run — the
// checkpoint carries the full-size parameters (the export keeps only the kept / active components) and the
// allocator's rank pattern and importance averages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { train } from '../../src/train/trainer.js';
import { METHOD_STATE_NAME, PARAMETERS_NAME } from '../../src/train/checkpoint.js';
import { writeStories } from './stories.js';

const dir = mkdtempSync(join(tmpdir(), 'peftjs-resume-alloc-'));
const data = writeStories(join(dir, 'stories.txt'), 200, 7);
// 30 steps; the schedule runs over steps 5–22 (tinit 4, final = 30 − 8), changing ranks every 3rd step.
const schedule = { tinit: 4, tfinal: 8, deltaT: 3, lora_dropout: 0.1 };
const METHODS = {
  adalora: { ...schedule, init_r: 6, target_r: 2 },
  increlora: { ...schedule, init_r: 1, target_r: 3, max_r: 5 },
};
// Step 13: mid-schedule, one step after a rank change (AdaLoRA's optimizer has revived masked E entries since);
// step 25: after the schedule ended (importance reset, final pattern fixed).
const STOPS = [13, 25];

const base = (method: string, output: string) => ({
  model: '../shared/models/stories260K',
  data,
  output,
  method,
  methodConfig: METHODS[method as keyof typeof METHODS],
  maxSteps: 30,
  batchSize: 4,
  seqLen: 32,
  lr: 3e-3,
  warmupSteps: 3,
  logEvery: 1,
  saveTotalLimit: 5,
  evalSplit: 0,
  precision: 'fp32' as const,
  progress: false,
});

function tensors(path: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path);
  try {
    return new Map(f.names().map((n) => [n, f.read(n) as Float32Array]));
  } finally {
    f.close();
  }
}

const rankPattern = (output: string) => (JSON.parse(readFileSync(join(output, 'adapter_config.json'), 'utf8')) as { rank_pattern: Record<string, boolean[]> }).rank_pattern;
const curve = (output: string) => new MetricsLog(join(output, 'metrics.jsonl')).read().map((r) => [r.step, r.loss, r.grad_norm]);

describe('resume with a rank allocator', () => {
  for (const method of Object.keys(METHODS)) {
    it(`${method}: interrupted at steps ${STOPS.join(', ')} and resumed == uninterrupted, bit for bit`, async () => {
      const straight = join(dir, `${method}-straight`);
      await train(base(method, straight), { log: () => {} });

      const resumed = join(dir, `${method}-resumed`);
      for (const [i, stop] of STOPS.entries()) {
        const ac = new AbortController();
        const r = await train(
          { ...base(method, resumed), resume: i > 0 },
          { log: () => {}, signal: ac.signal, onMetrics: (rec) => rec.step === stop && ac.abort() },
        );
        assert.ok(r.interrupted && r.steps === stop, `run ${i} stopped at step ${r.steps}`);
      }
      const last = await train({ ...base(method, resumed), resume: true }, { log: () => {} });
      assert.equal(last.steps, 30);

      // The interruption really fell mid-schedule: ranks changed, importance was being smoothed.
      const mid = join(resumed, 'checkpoint-13');
      const pattern = rankPattern(mid);
      const kept = Object.values(pattern).map((p) => p.filter(Boolean).length);
      const total = kept.reduce((a, b) => a + b, 0);
      if (method === 'adalora') assert.ok(total < 6 * kept.length, `AdaLoRA pruned by step 13 (kept ${total})`);
      else assert.ok(total > kept.length, `IncreLoRA grew by step 13 (active ${total})`);
      assert.ok(tensors(join(mid, METHOD_STATE_NAME)).size > 0, 'importance averages are in the checkpoint');
      assert.equal(tensors(join(resumed, 'checkpoint-25', METHOD_STATE_NAME)).size, 0, 'no importance after the schedule');
      if (method === 'adalora') {
        // The case the restore order is for: E entries masked at step 12 and moved again by step 13's update.
        const params = tensors(join(mid, PARAMETERS_NAME));
        const revived = Object.entries(pattern).some(([key, keep]) => keep.some((k, j) => !k && params.get(`${key}.default`)![j] !== 0));
        assert.ok(revived, 'some pruned E entry is non-zero in the step-13 parameters');
      }

      assert.deepEqual(rankPattern(resumed), rankPattern(straight));
      const [a, b] = [tensors(join(straight, 'adapter_model.safetensors')), tensors(join(resumed, 'adapter_model.safetensors'))];
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [k, x] of a) assert.deepEqual(b.get(k), x, `${k} differs`);
      assert.deepEqual(curve(resumed), curve(straight));
    });
  }
});
