// Trains a one-block transformer on a copy task with the peftjs engine, on the native backend and on the
// pure-TypeScript reference backend, and prints the loss curve and speed of each.
import * as pj from '../src/index.js';
import { TinyBlock, copyTaskBatch } from '../test/helpers/tiny-transformer.js';

function run(name: pj.BackendName, steps: number): void {
  pj.withBackend(name, () => {
    const gen = new pj.Generator(0);
    const cfg = { vocab: 16, dim: 64, heads: 4, kvHeads: 2, hidden: 128, seq: 32 };
    const model = new TinyBlock(cfg, gen);
    const opt = new pj.AdamW(model.params, { lr: 3e-3, weightDecay: 0 });
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const loss = pj.tidy(() => {
        const { ids, targets } = copyTaskBatch(gen, 16, cfg.seq, cfg.vocab);
        const l = model.loss(ids, targets);
        l.backward();
        return l.item();
      });
      pj.clipGradNorm(model.params, 1);
      opt.step();
      opt.zeroGrad();
      if (step === 1 || step % (steps / 10) === 0) {
        const tokps = (step * 16 * cfg.seq) / ((performance.now() - t0) / 1000);
        console.log(`  ${name.padEnd(9)} step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  ${tokps.toFixed(0)} tokens/s`);
      }
    }
  });
}

console.log('peftjs engine demo: a transformer block learns to copy the token 3 positions back');
if (pj.nativeAvailable()) run('native', 300);
run('reference', 100);
