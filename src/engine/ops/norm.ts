/** RMSNorm and LayerNorm over the last axis, each one fused kernel forward and one backward. */
import { backend } from '../backend/index.js';
import { needsGrad, record } from '../autograd.js';
import { empty, zeros, type Tensor } from '../tensor.js';
import { requireDType, requireShape } from './check.js';
import { contiguous } from './shape.js';

type F32 = Tensor<'f32'>;

function prepare(op: string, x: Tensor, ...params: (Tensor | null)[]): { c: F32; rows: number; cols: number } {
  requireDType(op, x, 'f32');
  const cols = x.shape[x.rank - 1]!;
  for (const p of params)
    if (p) {
      requireDType(op, p, 'f32');
      requireShape(op, p, [cols], 'weight/bias');
    }
  const c = contiguous(x) as F32;
  return { c, rows: c.size / cols, cols };
}

/** RMSNorm (Zhang & Sennrich 2019): `x / √(mean(x²) + eps) · weight`, as in Llama. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): F32 {
  const { c, rows, cols } = prepare('rmsNorm', x, weight);
  const out = empty(c.shape);
  const rstd = empty([rows]);
  backend().rmsNorm(c.data, weight ? (weight.data as Float32Array) : null, out.data, rstd.data, rows, cols, eps);
  record(out, 'rmsNorm', [x, weight], (gy) => {
    const g = contiguous(gy) as F32;
    const gx = empty(c.shape);
    const gw = weight && needsGrad(weight) ? (zeros([cols]) as F32) : null;
    backend().rmsNormBackward(c.data, weight ? (weight.data as Float32Array) : null, rstd.data, g.data, gx.data, gw?.data ?? null, rows, cols);
    if (g !== gy) g.dispose();
    return [gx, gw];
  });
  return out;
}

/** LayerNorm (Ba et al. 2016): `(x − mean) / √(var + eps) · weight + bias`. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): F32 {
  const { c, rows, cols } = prepare('layerNorm', x, weight, bias);
  const out = empty(c.shape);
  const mean = empty([rows]);
  const rstd = empty([rows]);
  const w = weight ? (weight.data as Float32Array) : null;
  backend().layerNorm(c.data, w, bias ? (bias.data as Float32Array) : null, out.data, mean.data, rstd.data, rows, cols, eps);
  record(out, 'layerNorm', [x, weight, bias], (gy) => {
    const g = contiguous(gy) as F32;
    const gx = empty(c.shape);
    const gw = weight && needsGrad(weight) ? (zeros([cols]) as F32) : null;
    const gb = bias && needsGrad(bias) ? (zeros([cols]) as F32) : null;
    backend().layerNormBackward(c.data, w, mean.data, rstd.data, g.data, gx.data, gw?.data ?? null, gb?.data ?? null, rows, cols);
    if (g !== gy) g.dispose();
    return [gx, gw, gb];
  });
  return out;
}
