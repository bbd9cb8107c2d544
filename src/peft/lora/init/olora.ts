/**
 * OLoRA (Büyükakyüz 2024, "OLoRA: Orthonormal Low-Rank Adaptation"): with the thin QR W = Q·R, B = Q[:, :r]
 * (orthonormal columns) and A = R[:r, :]; the base keeps W − s·B·A (PEFT `olora_init`, no division by s).
 */
import { cols32, qr, rows32 } from '../../common/linalg.js';
import type { InitFactors, LinearInitInput } from './index.js';

export function oloraInit({ w, out, inF, r }: LinearInitInput): InitFactors {
  const f = qr(w, out, inF);
  return { a: rows32(f.r, inF, 0, r), b: cols32(f.q, out, f.k, 0, r), residual: true };
}
