// Autograd and memory-scope semantics: accumulation, shared sub-expressions, no-grad, tidy/keep.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/index.js';

describe('autograd', () => {
  it('accumulates leaf gradients across backward calls until zeroed', () => {
    const x = pj.tensor([1, 2, 3]).requiresGrad_();
    pj.tidy(() => pj.sum(pj.mul(x, 2)).backward());
    pj.tidy(() => pj.sum(pj.mul(x, 3)).backward());
    assert.deepEqual(x.grad!.toArray(), [5, 5, 5]);
  });

  it('sums gradients over every path of a diamond, including pass-through adds of accumulated grads', () => {
    // y = (x + x·x) + x·x  →  dy/dx = 1 + 4x
    const x = pj.tensor([0.5, -1, 2]).requiresGrad_();
    pj.tidy(() => {
      const sq = pj.mul(x, x);
      const a = pj.add(x, sq);
      pj.sum(pj.add(a, sq)).backward();
    });
    assert.deepEqual(x.grad!.toArray(), [3, -3, 9]);
  });

  it('leaves an explicitly passed output gradient alive', () => {
    const x = pj.tensor([1, 2]).requiresGrad_();
    const g = pj.tensor([3, 4]);
    pj.tidy(() => pj.mul(x, 2).backward(g));
    assert.deepEqual(g.toArray(), [3, 4]);
    assert.deepEqual(x.grad!.toArray(), [6, 8]);
  });

  it('records nothing under noGrad and nothing for inputs that do not require grad', () => {
    const x = pj.tensor([1, 2]).requiresGrad_();
    const y = pj.noGrad(() => pj.mul(x, 2));
    assert.equal(y.requiresGrad, false);
    assert.equal(pj.mul(pj.tensor([1]), 2).gradFn, null);
    assert.throws(() => y.backward(), /does not require grad/);
  });

  it('tidy disposes intermediates but keeps returned and kept tensors', () => {
    let inner: pj.Tensor | null = null;
    let kept: pj.Tensor | null = null;
    const out = pj.tidy(() => {
      inner = pj.ones([3]);
      kept = pj.keep(pj.zeros([2]));
      return { result: pj.add(inner, 1) };
    });
    assert.equal(inner!.isDisposed, true);
    assert.equal(kept!.isDisposed, false);
    assert.deepEqual(out.result.toArray(), [2, 2, 2]);
  });

  it('views share storage with their base until the last one is disposed', () => {
    const base = pj.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const t = pj.transpose(base);
    base.dispose();
    assert.deepEqual(t.toArray(), [1, 4, 2, 5, 3, 6]);
  });
});
