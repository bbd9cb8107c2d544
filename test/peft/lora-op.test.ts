// The fused LoRA linear op: same values as the composition of engine ops, gradients by finite differences
// (f32 on both backends), Conv1D-layout and bf16 base weights, dropout with a fixed seed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../src/index.js';
import { backends } from '../helpers/backends.js';

const g = new pj.Generator(11);
const rnd = (shape: number[], std = 1) => pj.keep(pj.randn(shape, std, 0, g)).requiresGrad_();

/** The same function from separate engine ops (the reference). */
function unfused(x: pj.Tensor, w: pj.Tensor, bias: pj.Tensor | null, adapters: pj.LoraFactors[]): pj.Tensor {
  let y = pj.linear(x, w, bias);
  for (const ad of adapters) y = pj.add(y, pj.scale(pj.linear(pj.linear(x, ad.a), ad.b), ad.scale));
  return y;
}

function maxDiff(a: pj.Tensor, b: pj.Tensor): number {
  const x = a.toTyped() as Float32Array;
  const y = b.toTyped() as Float32Array;
  assert.equal(x.length, y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function gradsOf(fn: () => pj.Tensor, params: pj.Tensor[]): Float32Array[] {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
  pj.tidy(() => {
    const y = fn();
    pj.backward(pj.sum(pj.mul(y, y)));
  });
  return params.map((p) => {
    const out = p.grad!.toTyped() as Float32Array;
    p.grad!.dispose();
    p.grad = null;
    return out;
  });
}

for (const name of backends()) {
  describe(`loraLinear on ${name}`, () => {
    const run = <T>(fn: () => T) => pj.withBackend(name, () => pj.tidy(fn));

    it('matches the unfused composition with two adapters of different rank', () =>
      run(() => {
        const x = rnd([2, 3, 6]);
        const w = rnd([5, 6]);
        const b = rnd([5]);
        const ads = [
          { a: rnd([2, 6]), b: rnd([5, 2]), scale: 0.7, dropout: 0 },
          { a: rnd([3, 6]), b: rnd([5, 3]), scale: -1.3, dropout: 0 },
        ];
        const y = pj.loraLinear(x, w, b, ads);
        assert.deepEqual(y.shape, [2, 3, 5]);
        assert.ok(maxDiff(y, unfused(x, w, b, ads)) < 1e-5);
      }));

    it('passes gradcheck for x, W, bias, A and B', () =>
      run(() => {
        const x = rnd([2, 3, 6]);
        const w = rnd([5, 6]);
        const b = rnd([5]);
        const a1 = rnd([2, 6]);
        const b1 = rnd([5, 2]);
        const a2 = rnd([3, 6]);
        const b2 = rnd([5, 3]);
        pj.gradcheck(
          (x, w, b, a1, b1, a2, b2) =>
            pj.loraLinear(x, w, b, [
              { a: a1, b: b1, scale: 0.5, dropout: 0 },
              { a: a2, b: b2, scale: 2, dropout: 0 },
            ]),
          [x, w, b, a1, b1, a2, b2],
        );
      }));

    it('Conv1D layout: W stored [in, out] and read through a transposed view', () =>
      run(() => {
        const x = rnd([4, 6]);
        const wIO = rnd([6, 5]);
        const a = rnd([2, 6]);
        const b = rnd([5, 2]);
        const ad = (a: pj.Tensor, b: pj.Tensor) => [{ a, b, scale: 1.5, dropout: 0 }];
        assert.ok(maxDiff(pj.loraLinear(x, pj.transpose(wIO), null, ad(a, b)), unfused(x, pj.transpose(wIO), null, ad(a, b))) < 1e-5);
        pj.gradcheck((x, w, a, b) => pj.loraLinear(x, pj.transpose(w), null, ad(a, b)), [x, wIO, a, b]);
      }));

    it('dropout: a fixed seed makes it deterministic and its mask enters the gradients of x and A', () =>
      run(() => {
        const x = rnd([3, 8]);
        const w = rnd([4, 8]);
        const a = rnd([2, 8]);
        const b = rnd([4, 2]);
        const f = (x: pj.Tensor, w: pj.Tensor, a: pj.Tensor, b: pj.Tensor) => pj.loraLinear(x, w, null, [{ a, b, scale: 1, dropout: 0.4 }], new pj.Generator(5));
        pj.gradcheck(f, [x, w, a, b]);
        const noDrop = pj.loraLinear(x, w, null, [{ a, b, scale: 1, dropout: 0 }]);
        assert.ok(maxDiff(f(x, w, a, b), noDrop) > 1e-3, 'dropout changed nothing');
      }));

    it('bf16 base weight: base and adapter GEMMs in bf16 (autocast), values and gradients equal to the unfused path', () =>
      run(() => {
        const x = rnd([5, 16]);
        const w32 = rnd([12, 16]);
        const w = pj.castTo(w32, 'bf16');
        const a = rnd([4, 16]);
        const b = rnd([12, 4]);
        const ads = [{ a, b, scale: 0.8, dropout: 0 }];
        // PyTorch autocast: every linear reads bf16 inputs (the f32 factors rounded), accumulates in f32.
        const autocast = () => unfused(x, w, null, [{ ...ads[0]!, a: pj.cast(a, 'bf16'), b: pj.cast(b, 'bf16') }]);
        const fused = pj.loraLinear(x, w, null, ads);
        assert.ok(maxDiff(fused, autocast()) < 1e-4, `vs autocast composition: ${maxDiff(fused, autocast())}`);
        // …which differs from f32 adapter products by bf16 rounding, not more.
        const f32Adapters = unfused(x, w, null, ads);
        const scale = Math.max(...Array.from(f32Adapters.toTyped() as Float32Array, Math.abs));
        const d = maxDiff(fused, f32Adapters);
        assert.ok(d > 0 && d < 1e-2 * scale, `vs f32 adapters: ${d} (scale ${scale})`);
        const gf = gradsOf(() => pj.loraLinear(x, w, null, ads), [x, a, b]);
        const gu = gradsOf(autocast, [x, a, b]);
        for (let i = 0; i < 3; i++) {
          let m = 0;
          let scale = 0;
          for (let j = 0; j < gf[i]!.length; j++) {
            m = Math.max(m, Math.abs(gf[i]![j]! - gu[i]![j]!));
            scale = Math.max(scale, Math.abs(gu[i]![j]!));
          }
          // Same products, different points of bf16 rounding (the composition rounds s·g, the fused op g and u):
          // a few bf16 ulps (2⁻⁸ relative) of the largest entry.
          assert.ok(m <= 8e-3 * scale, `gradient ${i}: max diff ${m} (scale ${scale})`);
        }
      }));

    it('errors name the op and the offending factor', () =>
      run(() => {
        const x = rnd([2, 6]);
        const w = rnd([5, 6]);
        assert.throws(() => pj.loraLinear(x, w, null, [{ a: rnd([2, 7]), b: rnd([5, 2]), scale: 1, dropout: 0 }]), /loraLinear: adapter 0 A must have shape \[2, 6\]/);
        assert.throws(() => pj.loraLinear(x, w, null, [{ a: rnd([2, 6]), b: rnd([4, 2]), scale: 1, dropout: 0 }]), /adapter 0 B must have shape \[5, 2\]/);
      }));
  });
}
