// Fused optimizer steps: AdamW and SGD with momentum (PyTorch semantics), element-wise over flat parameters.
#include <cmath>
#include "fused.h"
#include "registry.h"

namespace peftjs {

// p −= lr·wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(m/bc1) / (√(v/bc2) + eps).
PEFTJS_EXPORT(adamw) {
  Args a(info, "adamw");
  float* p = a.f32(0);
  const float* g = a.f32(1);
  float* m = a.f32(2);
  float* v = a.f32(3);
  int64_t n = sizeArg(a, 4, "n");
  float lr = a.num(5), b1 = a.num(6), b2 = a.num(7), eps = a.num(8), wd = a.num(9);
  float bc1 = a.num(10), bc2 = a.num(11);
  need(a, 0, "p", n);
  need(a, 1, "g", n);
  need(a, 2, "m", n);
  need(a, 3, "v", n);
  float decay = 1.f - lr * wd, step = lr / bc1, rbc2 = 1.f / std::sqrt(bc2);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    float mi = b1 * m[i] + (1.f - b1) * g[i];
    float vi = b2 * v[i] + (1.f - b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (__builtin_sqrtf(vi) * rbc2 + eps);
  }
  return a.env().Undefined();
}

// g' = g + wd·p; buf = μ·buf + (1−dampening)·g' (buf = g' on the first step); d = nesterov ? g' + μ·buf : buf
// (μ = 0: d = g', buf untouched); p −= lr·d.
PEFTJS_EXPORT(sgd) {
  Args a(info, "sgd");
  float* p = a.f32(0);
  const float* g = a.f32(1);
  float* buf = a.f32(2);
  int64_t n = sizeArg(a, 3, "n");
  float lr = a.num(4), mu = a.num(5), damp = a.num(6), wd = a.num(7);
  bool nesterov = a.flag(8), first = a.flag(9);
  need(a, 0, "p", n);
  need(a, 1, "g", n);
  if (mu != 0) need(a, 2, "buf", n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] + wd * p[i], d = gi;
    if (mu != 0) {
      float bi = first ? gi : mu * buf[i] + (1.f - damp) * gi;
      buf[i] = bi;
      d = nesterov ? gi + mu * bi : bi;
    }
    p[i] -= lr * d;
  }
  return a.env().Undefined();
}

}  // namespace peftjs
