// Small models train end to end on both backends; a steady training loop allocates nothing and keeps RSS flat.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/index.js';
import { backends } from '../helpers/backends.js';
import { TinyBlock, copyTaskBatch } from '../helpers/tiny-transformer.js';

for (const name of backends()) {
  describe(`training on ${name}`, () => {
    it('a 2-layer MLP fits a smooth function (loss falls 10x)', () =>
      pj.withBackend(name, () => {
        const gen = new pj.Generator(1);
        const x = pj.keep(pj.randn([64, 4], 1, 0, gen));
        const y = pj.keep(pj.tidy(() => pj.tanh(pj.sum(pj.mul(x, pj.tensor([1, -2, 0.5, 1.5])), -1, true))));
        const w1 = pj.keep(pj.randn([32, 4], 0.5, 0, gen).requiresGrad_());
        const b1 = pj.keep(pj.zeros([32]).requiresGrad_());
        const w2 = pj.keep(pj.randn([1, 32], 0.2, 0, gen).requiresGrad_());
        const opt = new pj.AdamW([w1, b1, w2], { lr: 0.01, weightDecay: 0 });
        const losses: number[] = [];
        for (let step = 0; step < 300; step++) {
          losses.push(
            pj.tidy(() => {
              const pred = pj.linear(pj.tanh(pj.linear(x, w1, b1)), w2);
              const loss = pj.mean(pj.square(pj.sub(pred, y)));
              loss.backward();
              return loss.item();
            }),
          );
          opt.step();
          opt.zeroGrad();
        }
        assert.ok(losses.at(-1)! < losses[0]! / 10, `loss ${losses[0]} → ${losses.at(-1)}`);
      }));

    it('a transformer block learns a copy task (loss falls below half)', () =>
      pj.withBackend(name, () => {
        const gen = new pj.Generator(2);
        const cfg = { vocab: 12, dim: 32, heads: 4, kvHeads: 2, hidden: 64, seq: 12 };
        const model = new TinyBlock(cfg, gen);
        const opt = new pj.AdamW(model.params, { lr: 0.01, weightDecay: 0 });
        const losses: number[] = [];
        for (let step = 0; step < 150; step++) {
          const loss = pj.tidy(() => {
            const { ids, targets } = copyTaskBatch(gen, 8, cfg.seq, cfg.vocab);
            const l = model.loss(ids, targets);
            l.backward();
            return l.item();
          });
          pj.clipGradNorm(model.params, 1);
          opt.step();
          opt.zeroGrad();
          losses.push(loss);
        }
        const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
        const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
        assert.ok(last < first / 2, `loss ${first} → ${last}`);
      }));
  });
}

describe('memory', () => {
  it('200 training steps: no fresh allocations after warm-up and flat RSS', () => {
    const gen = new pj.Generator(3);
    const cfg = { vocab: 64, dim: 64, heads: 4, kvHeads: 2, hidden: 128, seq: 32 };
    const model = new TinyBlock(cfg, gen);
    const opt = new pj.AdamW(model.params, { lr: 1e-3 });
    const step = () => {
      pj.tidy(() => {
        const { ids, targets } = copyTaskBatch(gen, 4, cfg.seq, cfg.vocab);
        model.loss(ids, targets).backward();
      });
      opt.step();
      opt.zeroGrad();
    };
    for (let i = 0; i < 20; i++) step();
    const fresh0 = pj.freshAllocatedBytes();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) step();
    const freshGrowth = pj.freshAllocatedBytes() - fresh0;
    const rssGrowthMB = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.equal(freshGrowth, 0, `steady-state steps allocated ${freshGrowth} fresh bytes`);
    assert.ok(rssGrowthMB < 32, `RSS grew ${rssGrowthMB.toFixed(1)} MB over 200 steps`);
  });
});
