/**
 * A GEMM operand in its compute dtype. Shared by the engine's matrix products and the fused ops that call the
 * GEMM kernel themselves (LoRA), so one activation is cast to bf16 once, whoever reads it.
 */
import { keep } from '../scope.js';
import { castTo, type Tensor } from '../tensor.js';

/** The dtype a GEMM reads its operands in: f32, or bf16 with fp32 accumulation. */
export type Compute = 'f32' | 'bf16';

/**
 * `x` in the compute dtype; `temp` says the caller owns (and disposes) the returned copy. The bf16 copy of an op's
 * output is cached on it: outputs of recorded ops are never written in place (parameters and gradients are, so
 * theirs is not cached).
 */
export function inComputeType(x: Tensor, dt: Compute): { t: Tensor; temp: boolean } {
  if (x.dtype === dt) return { t: x, temp: false };
  if (dt === 'f32' || !x.gradFn) return { t: castTo(x, dt), temp: true };
  if (!x.bf16Copy || x.bf16Copy.isDisposed) x.bf16Copy = keep(castTo(x, 'bf16'));
  return { t: x.bf16Copy, temp: false };
}
