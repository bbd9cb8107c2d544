// Rotary position embedding (RoPE) of x [batch, seq, heads, dim]; the inverse rotation is its backward pass.
#include "fused.h"
#include "registry.h"

namespace peftjs {

// Pair i of each head, (x0, x1) = (x[2i], x[2i+1]) when interleaved, else (x[i], x[i + dim/2]), becomes
// (x0·cos − x1·sin, x0·sin + x1·cos) with the angle θ_i of the row's position (−θ_i when inverse).
// Both values of a pair are read before either is written, so out may alias x.
PEFTJS_EXPORT(rope) {
  Args a(info, "rope");
  const float* x = a.f32(0);
  float* out = a.f32(1);
  const float* cosT = a.f32(2);
  const float* sinT = a.f32(3);
  int64_t batch = sizeArg(a, 4, "batch"), seq = sizeArg(a, 5, "seq"), heads = sizeArg(a, 6, "heads");
  int64_t dim = sizeArg(a, 7, "dim"), cbs = sizeArg(a, 8, "cosBatchStride");
  bool interleaved = a.flag(9), inverse = a.flag(10);
  if (dim % 2) a.fail("dim must be even, got " + std::to_string(dim));
  int64_t half = dim / 2, n = batch * seq * heads * dim;
  need(a, 0, "x", n);
  need(a, 1, "out", n);
  int64_t tables = batch && seq ? (batch - 1) * cbs + seq * half : 0;
  need(a, 2, "cos", tables);
  need(a, 3, "sin", tables);
  // Element offsets of the two halves of pair i: interleaved (2i, 2i+1), rotate-half (i, i + half).
  int64_t step = interleaved ? 2 : 1, second = interleaved ? 1 : half;
  float sign = inverse ? -1.f : 1.f;
#pragma omp parallel for collapse(2) schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < batch; b++)
    for (int64_t t = 0; t < seq; t++) {
      const float* c = cosT + b * cbs + t * half;
      const float* s = sinT + b * cbs + t * half;
      for (int64_t h = 0; h < heads; h++) {
        const float* xr = x + ((b * seq + t) * heads + h) * dim;
        float* o = out + ((b * seq + t) * heads + h) * dim;
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          float x0 = xr[i * step], x1 = xr[i * step + second], si = sign * s[i];
          o[i * step] = x0 * c[i] - x1 * si;
          o[i * step + second] = x0 * si + x1 * c[i];
        }
      }
    }
  return a.env().Undefined();
}

}  // namespace peftjs
