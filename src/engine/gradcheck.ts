/** Finite-difference gradient checking for any differentiable function of tensors. */
import { backward, noGrad } from './autograd.js';
import { Generator } from './random.js';
import { tidy } from './scope.js';
import { fromStorage, type Tensor } from './tensor.js';
import { mul } from './ops/elementwise.js';
import { sum } from './ops/reduce.js';

export interface GradcheckOptions {
  /** Central-difference step. Default 1e-2 (f32 forward passes need a coarse step). */
  eps?: number;
  /** Allowed |analytic − numeric| ≤ atol + rtol·|numeric|. Defaults 1e-3 and 1e-2. */
  atol?: number;
  rtol?: number;
  /** Elements checked per input (a seeded sample when the input is larger). Default 64. */
  maxPerInput?: number;
  seed?: number;
}

/**
 * Checks the gradients autograd computes for `fn` against central finite differences of
 * `L = Σ fn(inputs) ⊙ W` for a fixed random W. `inputs` are contiguous f32 leaves; those with `requiresGrad`
 * are checked. Throws an error listing the worst mismatches; returns the largest error seen.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): number {
  const eps = opts.eps ?? 1e-2;
  const atol = opts.atol ?? 1e-3;
  const rtol = opts.rtol ?? 1e-2;
  const maxPer = opts.maxPerInput ?? 64;
  const gen = new Generator(opts.seed ?? 1234);
  for (const x of inputs)
    if (x.requiresGrad && (x.dtype !== 'f32' || !x.isContiguous() || x.gradFn))
      throw new Error(`gradcheck: inputs must be contiguous f32 leaves, got ${x.describe()}`);

  const outShape = noGrad(() => tidy(() => [...fn(...inputs).shape]));
  const wData = Float32Array.from({ length: outShape.reduce((a, b) => a * b, 1) }, () => gen.normal());
  const w = fromStorage(wData, outShape, 'f32');
  const objective = (): number =>
    noGrad(() =>
      tidy(() => {
        const y = fn(...inputs).toTyped() as Float32Array;
        let s = 0;
        for (let i = 0; i < y.length; i++) s += y[i]! * wData[i]!;
        return s;
      }),
    );

  for (const x of inputs) {
    x.grad?.dispose();
    x.grad = null;
  }
  tidy(() => backward(sum(mul(fn(...inputs), w))));

  const failures: string[] = [];
  let worst = 0;
  inputs.forEach((x, k) => {
    if (!x.requiresGrad) return;
    if (!x.grad) {
      failures.push(`input ${k} ${x.describe()}: no gradient reached it`);
      return;
    }
    const analytic = x.grad.toTyped() as Float32Array;
    const data = x.data as Float32Array;
    const picks = x.size <= maxPer ? [...Array(x.size).keys()] : Array.from({ length: maxPer }, () => Math.floor(gen.uniform() * x.size));
    for (const i of picks) {
      const orig = data[i]!;
      data[i] = orig + eps;
      const fp = objective();
      data[i] = orig - eps;
      const fm = objective();
      data[i] = orig;
      const numeric = (fp - fm) / (2 * eps);
      const err = Math.abs(analytic[i]! - numeric);
      worst = Math.max(worst, err / (atol + rtol * Math.abs(numeric)));
      if (err > atol + rtol * Math.abs(numeric) && failures.length < 10)
        failures.push(`input ${k} ${x.describe()} element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
    }
    x.grad.dispose();
    x.grad = null;
  });
  w.dispose();
  if (failures.length) throw new Error(`gradcheck failed:\n  ${failures.join('\n  ')}`);
  return worst;
}
