// LoLDU: the leading LDU factors of the base weight are exact (P·W = L·D·U on the leading block, reconstruction of
// a rank-r weight); ΔW = L·diag(σ·z − d)·U is zero at init with r + 1 trainable numbers per layer; the file holds
// only z and σ. PEFT has no LoLDU (peftjs config).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pj from '../../../src/index.js';
import { leadingLdu, LolduLinear } from '../../../src/peft/loldu/index.js';
import { adapted, relDiff, saveLoadRoundTrip, standardChecks, stories, Q_PROJ } from './variant-helpers.js';

const CONFIG = { peft_type: 'LOLDU', r: 8, target_modules: ['q_proj', 'v_proj', 'o_proj'] };
const arr = (t: pj.Tensor) => t.toTyped() as Float32Array;

describe('LoLDU', () => {
  it('leadingLdu: L·diag(d)·U reproduces a rank-r matrix exactly; L unit lower (pivoted), U unit upper', () => {
    const g = new pj.Generator(4);
    const [m, n, r] = [12, 9, 3];
    const p = Float32Array.from({ length: m * r }, () => g.normal());
    const q = Float32Array.from({ length: r * n }, () => g.normal());
    const w = Float32Array.from({ length: m * n }, (_, x) => p.subarray(Math.floor(x / n) * r, Math.floor(x / n) * r + r).reduce((s, v, k) => s + v * q[k * n + (x % n)]!, 0));
    const { l, d, u } = leadingLdu(w, m, n, r);
    const back = Float32Array.from({ length: m * n }, (_, x) => {
      let s = 0;
      for (let k = 0; k < r; k++) s += l[Math.floor(x / n) * r + k]! * d[k]! * u[k * n + (x % n)]!;
      return s;
    });
    assert.ok(relDiff(w, back) < 1e-5, `reconstruction ${relDiff(w, back)}`);
    for (let k = 0; k < r; k++) {
      assert.ok(Math.abs(u[k * n + k]! - 1) < 1e-6 && u.subarray(k * n, k * n + k).every((v) => v === 0), 'U unit upper');
      assert.equal(l.filter((v, x) => x % r === k && v === 1).length >= 1, true);
      assert.ok(l.every((v) => Math.abs(v) <= 1 + 1e-6), 'partial pivoting keeps |L| ≤ 1');
    }
  });

  it('ΔW = 0 at init (output = base) with r + 1 trainable numbers per layer; ΔW = L·diag(σz − d)·U', () => {
    const { model, peft } = adapted(CONFIG);
    assert.equal(peft.parameterCounts().trainable, 5 * 3 * (8 + 1));
    const ids = pj.tensor([1, 2, 3, 4], [1, 4], 'i32');
    const out = () => pj.tidy(() => pj.noGrad(() => arr(model.forward(ids))));
    assert.deepEqual(out(), peft.disableAdapters(out));
    const layer = peft.model.getModule(Q_PROJ) as LolduLinear;
    const [z, sigma] = layer.adapterTensors('default').map(([, t]) => t.data as Float32Array);
    z!.set(z!.map((v, i) => v * (1 + 0.1 * i)));
    sigma![0] = 1.5;
    const { l, d, u } = layer.ldu('default');
    const [L, D, U] = [arr(l), arr(d), arr(u)];
    const want = Float32Array.from({ length: 64 * 64 }, (_, x) => {
      let s = 0;
      for (let k = 0; k < 8; k++) s += L[Math.floor(x / 64) * 8 + k]! * (1.5 * z![k]! - D[k]!) * U[k * 64 + (x % 64)]!;
      return s;
    });
    assert.ok(relDiff(want, pj.noGrad(() => arr(layer.deltaWeight('default')))) < 1e-5);
  });

  it('the file holds only loldu_diag [r] and loldu_scale [1]; L, U are recomputed from the base on load', () => {
    const { keys, config } = saveLoadRoundTrip(stories, CONFIG);
    assert.equal(keys.size, 5 * 3 * 2);
    for (const [k, shape] of keys) assert.deepEqual(shape, k.endsWith('loldu_diag') ? [8] : [1]);
    assert.equal(config.peft_type, 'LOLDU');
  });

  standardChecks(CONFIG, { lr: 3e-2 });
});
