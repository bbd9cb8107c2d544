// Routing utilities and the task mixture: top-k and the load-balancing loss on hand-made values (and its gradient),
// sparse dispatch against a dense reference, temperature sampling, batches carrying each row's task id.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/engine/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { dispatchRows, loadBalancingLoss, routedFractions, samplingProbabilities, TaskMixture, topK, topKGates } from '../../src/multitask/index.js';

const STORIES = new URL('../../../shared/models/stories260K-hf', import.meta.url).pathname;

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `element ${i}: ${a[i]} vs ${b[i]}`);
};

describe('routing', () => {
  it('topK picks the largest entries per row, ties to the lower index', () => {
    const scores = Float32Array.from([0.1, 0.5, 0.3, 0.9, 2, 1, 1, 0]);
    assert.deepEqual([...topK(scores, 2, 4, 2)], [3, 1, 0, 1]);
    assert.deepEqual([...topK(scores, 2, 4, 1)], [3, 0]);
    assert.throws(() => topK(scores, 2, 4, 5), /k must be an integer in \[1, 4\]/);
  });

  it('load-balancing loss N·Σ f_i·P_i on hand-made router probabilities, with its gradient', () => {
    const probs = pj.tensor([0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.6, 0.3, 0.1, 0.2, 0.2, 0.6], [4, 3]).requiresGrad_();
    const choice = topK(probs.data as Float32Array, 4, 3, 1);
    assert.deepEqual([...choice], [0, 1, 0, 2]);
    close(routedFractions(choice, 3), [0.5, 0.25, 0.25]);
    // P = column means [0.4, 0.375, 0.225]; loss = 3 · (0.5·0.4 + 0.25·0.375 + 0.25·0.225) = 1.05.
    const loss = loadBalancingLoss(probs, choice);
    assert.ok(Math.abs(loss.item() - 1.05) < 1e-6, `loss ${loss.item()}`);
    loss.backward();
    // ∂L/∂p[n, i] = N · f_i / rows.
    close(probs.grad!.toTyped(), Array.from({ length: 12 }, (_, k) => (3 * [0.5, 0.25, 0.25][k % 3]!) / 4));
    // Perfect balance (uniform probabilities, equal counts) gives exactly 1.
    const uniform = pj.full([4, 2], 0.5);
    assert.ok(Math.abs(loadBalancingLoss(uniform, Int32Array.from([0, 1, 1, 0])).item() - 1) < 1e-6);
  });

  it('top-k gates: raw probability for k = 1, renormalised over the choices for k > 1', () => {
    const probs = pj.tensor([0.5, 0.3, 0.2, 0.1, 0.1, 0.8], [2, 3]);
    close(topKGates(probs, Int32Array.from([0, 2]), 1).toTyped(), [0.5, 0.8]);
    close(topKGates(probs, Int32Array.from([0, 1, 2, 0]), 2).toTyped(), [0.5 / 0.8, 0.3 / 0.8, 0.8 / 0.9, 0.1 / 0.9]);
  });

  it('dispatchRows equals the dense gated sum; an expert without rows is never called', () => {
    pj.manualSeed(1);
    const x = pj.randn([5, 3]);
    const w = [pj.randn([2, 3]), pj.randn([2, 3]), pj.randn([2, 3])];
    const choice = Int32Array.from([0, 1, 1, 0, 0, 1, 1, 0, 0, 1]);
    const gates = pj.rand([5, 2]);
    const called: number[] = [];
    const got = dispatchRows(x, choice, 2, 3, 2, gates, (e, xr) => (called.push(e), pj.linear(xr, w[e]!))).toTyped();
    assert.deepEqual(called, [0, 1]);
    const want: number[] = [];
    const xs = x.toTyped();
    const gs = gates.toTyped();
    for (let n = 0; n < 5; n++)
      for (let o = 0; o < 2; o++) {
        let s = 0;
        for (let j = 0; j < 2; j++) {
          const wt = w[choice[n * 2 + j]!]!.toTyped();
          let dot = 0;
          for (let i = 0; i < 3; i++) dot += xs[n * 3 + i]! * wt[o * 3 + i]!;
          s += gs[n * 2 + j]! * dot;
        }
        want.push(s);
      }
    close(got, want, 1e-5);
  });
});

describe('task mixture', () => {
  it('temperature sampling p ∝ n^(1/T); explicit weights win', () => {
    close(samplingProbabilities([100, 400]), [0.2, 0.8]);
    close(samplingProbabilities([100, 400], { temperature: 2 }), [1 / 3, 2 / 3]);
    close(samplingProbabilities([100, 400], { temperature: 1e9 }), [0.5, 0.5], 1e-6);
    close(samplingProbabilities([100, 400], { weights: [3, 1] }), [0.75, 0.25]);
    assert.throws(() => samplingProbabilities([1, 2], { weights: [1] }), /1 weights for 2 tasks/);
  });

  it('batches carry each row task id; tasks are drawn with the mixture probabilities', () => {
    const tok = loadTokenizer(STORIES);
    const make = (word: string, n: number) => Array.from({ length: n }, (_, i) => ({ prompt: `${word} ${i}:`, completion: ` ${word}` }));
    const mix = new TaskMixture(tok, [
      { name: 'cat', train: make('cat', 30), eval: [] },
      { name: 'dog', train: make('dog', 90), eval: [] },
    ], { seed: 3 });
    close(mix.probabilities, [0.25, 0.75]);
    let dogs = 0;
    let total = 0;
    for (let s = 0; s < 40; s++) {
      const b = mix.nextBatch(8);
      b.taskIds.forEach((t, r) => {
        const text = tok.decode([...b.ids.subarray(r * b.T, (r + 1) * b.T)], { skipSpecialTokens: true });
        assert.ok(text.includes(t === 0 ? 'cat' : 'dog') && !text.includes(t === 0 ? 'dog' : 'cat'), `row ${r} (task ${t}): ${text}`);
        dogs += t;
        total++;
      });
    }
    assert.ok(Math.abs(dogs / total - 0.75) < 0.08, `dog share ${dogs / total}`);
    assert.equal(mix.taskId('dog'), 1);
    assert.throws(() => mix.taskId('cow'), /unknown task 'cow'; tasks: cat, dog/);
  });
});
