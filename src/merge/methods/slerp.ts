/**
 * Spherical linear interpolation of two tensors seen as flat vectors (Shoemake, 1985; mergekit's `slerp`): the
 * angle θ between the normalised vectors is interpolated, and the result is
 * sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b on the original (unnormalised) vectors. Near-parallel vectors
 * (|cos θ| > 0.9995), where sin θ → 0, fall back to linear interpolation.
 */
import { checkSameLength } from './linear.js';

/** |cos θ| above which {@link slerp} interpolates linearly (mergekit's DOT_THRESHOLD). */
export const SLERP_PARALLEL_THRESHOLD = 0.9995;

/** slerp(t; a, b) as a fresh array: t = 0 gives `a`, t = 1 gives `b`. */
export function slerp(t: number, a: Float32Array, b: Float32Array): Float32Array {
  const n = checkSameLength('slerp', [a, b]);
  let aa = 0, bb = 0, ab = 0;
  for (let i = 0; i < n; i++) {
    aa += a[i] * a[i];
    bb += b[i] * b[i];
    ab += a[i] * b[i];
  }
  // Vectors of (near) zero norm are not normalised, as in mergekit.
  const na = Math.sqrt(aa) > 1e-8 ? Math.sqrt(aa) : 1;
  const nb = Math.sqrt(bb) > 1e-8 ? Math.sqrt(bb) : 1;
  const cos = ab / (na * nb);
  let ca: number, cb: number;
  if (Math.abs(cos) > SLERP_PARALLEL_THRESHOLD) {
    ca = 1 - t;
    cb = t;
  } else {
    const theta = Math.acos(cos), sin = Math.sin(theta);
    ca = Math.sin((1 - t) * theta) / sin;
    cb = Math.sin(t * theta) / sin;
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ca * a[i] + cb * b[i];
  return out;
}
