// Every differentiable op passes gradcheck (finite differences) on every available backend.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/index.js';
import { backends } from '../helpers/backends.js';

const g = new pj.Generator(7);
const rnd = (shape: number[], std = 1, shift = 0) => pj.add(pj.randn(shape, std, 0, g), shift).requiresGrad_();
const pos = (shape: number[]) => pj.add(pj.rand(shape, 0.5, 2, g), 0).requiresGrad_();

for (const name of backends()) {
  describe(`gradcheck on ${name}`, () => {
    const check = (fn: (...xs: pj.Tensor[]) => pj.Tensor, inputs: pj.Tensor[], opts?: pj.GradcheckOptions) =>
      pj.withBackend(name, () => pj.gradcheck(fn, inputs, opts));

    it('add / sub / mul / div with broadcasting', () => {
      const a = rnd([3, 1, 4]);
      const b = rnd([2, 4]);
      const c = pos([2, 1]);
      check((a, b, c) => pj.div(pj.mul(pj.sub(pj.add(a, b), b), a), c), [a, b, c]);
      check((a) => pj.add(pj.mul(a, 3), -2), [a]);
    });

    it('unary activations', () => {
      const x = rnd([5, 7]);
      const p = pos([4, 3]);
      for (const f of [pj.exp, pj.silu, pj.tanh, pj.sigmoid, pj.square, pj.neg, (t: pj.Tensor) => pj.gelu(t, 'tanh'), (t: pj.Tensor) => pj.gelu(t, 'none')])
        check(f, [x]);
      check(pj.log, [p]);
      check(pj.sqrt, [p]);
      const r = pj.add(pj.rand([3, 4], 0.2, 1, g), 0).requiresGrad_();
      check((t) => pj.relu(pj.sub(t, 0.6)), [r]);
    });

    it('swiglu', () => {
      check(pj.swiglu, [rnd([3, 8]), rnd([3, 8])]);
    });

    it('sum and mean over axes', () => {
      const x = rnd([2, 3, 4]);
      check((t) => pj.sum(t, [0, 2]), [x]);
      check((t) => pj.sum(t, 1, true), [x]);
      check((t) => pj.mean(t), [x]);
      check((t) => pj.mean(t, -1), [x]);
    });

    it('matmul: batched, broadcast, transposed operands', () => {
      const a = rnd([2, 3, 5]);
      const b = rnd([5, 4]);
      check(pj.matmul, [a, b]);
      const bt = rnd([2, 4, 5]);
      check((a, b) => pj.matmul(a, pj.transpose(b)), [a, bt]);
      const at = rnd([5, 3]);
      check((a, b) => pj.matmul(pj.transpose(a), b), [at, b]);
    });

    it('linear with and without bias', () => {
      const x = rnd([2, 3, 6]);
      const w = rnd([5, 6]);
      const bias = rnd([5]);
      check(pj.linear, [x, w, bias]);
      check((x, w) => pj.linear(x, w), [x, w]);
    });

    it('softmax and logSoftmax', () => {
      const x = rnd([4, 9]);
      check((t) => pj.mul(pj.softmax(t), t), [x]);
      check(pj.logSoftmax, [x]);
    });

    it('rmsNorm and layerNorm', () => {
      const x = rnd([3, 2, 16]);
      const w = rnd([16], 0.5, 1);
      const b = rnd([16]);
      check((x, w) => pj.rmsNorm(x, w, 1e-5), [x, w]);
      check((x) => pj.rmsNorm(x, null, 1e-5), [x]);
      check((x, w, b) => pj.layerNorm(x, w, b, 1e-5), [x, w, b]);
    });

    it('rope, interleaved and half-rotation', () => {
      const T = 5;
      const D = 8;
      const ang = Float32Array.from({ length: T * (D / 2) }, (_, i) => Math.floor(i / (D / 2)) * 10000 ** (-(i % (D / 2)) / (D / 2)));
      const cos = pj.tensor(ang.map(Math.cos), [T, D / 2]);
      const sin = pj.tensor(ang.map(Math.sin), [T, D / 2]);
      const x = rnd([2, T, 3, D]);
      check((t) => pj.rope(t, cos, sin, true), [x]);
      check((t) => pj.rope(t, cos, sin, false), [x]);
    });

    it('attention: causal, grouped-query, key mask', () => {
      const q = rnd([2, 5, 4, 8]);
      const k = rnd([2, 5, 2, 8]);
      const v = rnd([2, 5, 2, 8]);
      check((q, k, v) => pj.attention(q, k, v), [q, k, v]);
      const mask = pj.tensor([0, 1, 1, 1, 1, 1, 1, 1, 0, 1], [2, 5], 'u8');
      check((q, k, v) => pj.attention(q, k, v, { keyMask: mask }), [q, k, v]);
      check((q, k, v) => pj.attention(q, k, v, { causal: false }), [q, k, v]);
      const q2 = rnd([1, 2, 2, 4]);
      const k2 = rnd([1, 6, 1, 4]);
      const v2 = rnd([1, 6, 1, 4]);
      check((q, k, v) => pj.attention(q, k, v), [q2, k2, v2]);
    });

    it('embedding', () => {
      const table = rnd([7, 4]);
      const ids = pj.tensor([0, 3, 3, 6, 1], [5], 'i32');
      check((t) => pj.embedding(t, ids), [table]);
    });

    it('crossEntropy with ignore index, mean / sum / none', () => {
      const logits = rnd([6, 5]);
      const targets = pj.tensor([0, 4, -100, 2, 2, 1], [6], 'i32');
      check((l) => pj.crossEntropy(l, targets), [logits]);
      check((l) => pj.crossEntropy(l, targets, { reduction: 'sum' }), [logits]);
      check((l) => pj.crossEntropy(l, targets, { reduction: 'none' }), [logits]);
    });

    it('dropout (same seed each call)', () => {
      const x = rnd([4, 6]);
      check((t) => pj.dropout(t, 0.3, new pj.Generator(3), true), [x]);
    });

    it('shape ops: concat, split, narrow, permute, expand, unsqueeze, squeeze, reshape', () => {
      const a = rnd([2, 3]);
      const b = rnd([2, 2]);
      check((a, b) => pj.mul(pj.concat([a, b], 1), pj.concat([b, a], 1)), [a, b]);
      check((a) => { const [x, y] = pj.split(a, [1, 2], 1); return pj.mul(pj.contiguous(x!), pj.sum(y!)); }, [a]);
      check((a) => pj.permute(pj.unsqueeze(a, 0), [2, 0, 1]), [a]);
      check((a) => pj.mul(pj.expand(pj.narrow(a, 1, 1, 1), [4, 2, 1]), 2), [a]);
      check((a) => pj.squeeze(pj.reshape(a, [3, 1, 2]), 1), [a]);
    });

    it('where and maskedFill', () => {
      const a = rnd([3, 4]);
      const b = rnd([4]);
      const mask = pj.tensor([1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0], [3, 4], 'u8');
      check((a, b) => pj.where(mask, a, b), [a, b]);
      check((a) => pj.maskedFill(a, mask, -3), [a]);
    });

    it('cast to bf16 passes gradients through unchanged', () =>
      pj.withBackend(name, () => {
        // Rounding to bf16 is a step function, so finite differences say nothing: check the pass-through directly.
        const x = rnd([3, 4]);
        const w = pj.randn([3, 4], 1, 0, g);
        pj.tidy(() => pj.sum(pj.mul(pj.cast(pj.cast(x, 'bf16'), 'f32'), w)).backward());
        assert.deepEqual(x.grad!.toArray(), w.toArray());
      }));
  });
}

describe('errors name the op and both shapes', () => {
  it('binary broadcast mismatch', () => {
    assert.throws(() => pj.add(pj.zeros([2, 3]), pj.zeros([4])), /add: shapes \[2, 3\] and \[4\]/);
  });
  it('matmul inner dimension mismatch', () => {
    assert.throws(() => pj.matmul(pj.zeros([2, 3]), pj.zeros([4, 5])), /matmul: .*f32\[2, 3\] @ f32\[4, 5\]/);
  });
  it('linear weight mismatch', () => {
    assert.throws(() => pj.linear(pj.zeros([2, 3]), pj.zeros([4, 5])), /linear: input f32\[2, 3\] does not match weight f32\[4, 5\]/);
  });
  it('dtype errors', () => {
    assert.throws(() => pj.softmax(pj.zeros([2, 3], 'i32')), /softmax: expected f32 but got i32\[2, 3\]/);
    assert.throws(() => pj.embedding(pj.zeros([4, 2]), pj.zeros([3])), /embedding: expected i32 but got f32\[3\]/);
  });
  it('use after dispose', () => {
    const t = pj.zeros([2]);
    t.dispose();
    assert.throws(() => t.toArray(), /used after dispose/);
  });
});
