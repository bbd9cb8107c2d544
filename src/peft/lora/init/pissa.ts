/**
 * PiSSA (Meng et al. 2024, "Principal Singular values and Singular vectors Adaptation", eq. 2–5): with
 * W = U·S·Vᵀ, the adapter takes the principal part, A = diag(√(S_r/s))·V_rᵀ and B = U_r·diag(√(S_r/s)), so
 * s·B·A = U_r·S_r·V_rᵀ, and the base keeps the residual W − s·B·A. `init_lora_weights="pissa"` uses the exact
 * SVD; `"pissa_niter_N"` the randomized one with N power iterations (PEFT's fast variant, `torch.svd_lowrank`).
 */
import { svd } from '../../../engine/index.js';
import { cols32, rows32, scaleCols32, scaleRows32 } from '../../common/linalg.js';
import { randomizedSvd } from '../../common/rsvd.js';
import { pissaNiter, type InitFactors, type LinearInitInput } from './index.js';

export function pissaInit({ w, out, inF, r, scaling, init }: LinearInitInput): InitFactors {
  const niter = pissaNiter(init);
  const f = niter === null ? svd(w, out, inF) : randomizedSvd(w, out, inF, r, { niter });
  const root = Array.from(f.s.subarray(0, r), (x) => Math.sqrt(x / scaling));
  return {
    a: scaleRows32(rows32(f.vt, inF, 0, r), r, inF, root),
    b: scaleCols32(cols32(f.u, out, f.k, 0, r), out, r, root),
    residual: true,
  };
}
