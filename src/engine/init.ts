/** Random tensors for initialisation (seeded; `globalGenerator` unless one is given). */
import { globalGenerator, type Generator } from './random.js';
import { empty, type Tensor } from './tensor.js';

type F32 = Tensor<'f32'>;

/** Normal(mean, std) samples. */
export function randn(shape: readonly number[], std = 1, mean = 0, gen: Generator = globalGenerator): F32 {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = mean + std * gen.normal();
  return t;
}

/** Uniform samples in [low, high). */
export function rand(shape: readonly number[], low = 0, high = 1, gen: Generator = globalGenerator): F32 {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = low + (high - low) * gen.uniform();
  return t;
}
