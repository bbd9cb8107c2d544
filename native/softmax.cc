// Row-wise softmax and log-softmax over the last axis of a [rows, cols] matrix, forward and backward.
#include "fused.h"
#include "registry.h"

namespace peftjs {

// y = exp(x − lse) or, for log-softmax, y = x − lse (an all −inf row gives NaN, as in PyTorch).
PEFTJS_EXPORT(softmax) {
  Args a(info, "softmax");
  const float* x = a.f32(0);
  float* out = a.f32(1);
  int64_t rows = sizeArg(a, 2, "rows"), cols = sizeArg(a, 3, "cols");
  bool log = a.flag(4);
  need(a, 0, "x", rows * cols);
  need(a, 1, "out", rows * cols);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float lse = logSumExp(xr, cols);
    if (log) {
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) o[j] = xr[j] - lse;
    } else {
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) o[j] = expFast(xr[j] - lse);
    }
  }
  return a.env().Undefined();
}

// softmax:     gx = y ∘ (gy − Σ gy∘y)
// log-softmax: gx = gy − exp(y) · Σ gy
PEFTJS_EXPORT(softmaxBackward) {
  Args a(info, "softmaxBackward");
  const float* y = a.f32(0);
  const float* gy = a.f32(1);
  float* gx = a.f32(2);
  int64_t rows = sizeArg(a, 3, "rows"), cols = sizeArg(a, 4, "cols");
  bool log = a.flag(5);
  need(a, 0, "y", rows * cols);
  need(a, 1, "gy", rows * cols);
  need(a, 2, "gx", rows * cols);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * cols;
    const float* gr = gy + r * cols;
    float* o = gx + r * cols;
    float dot = 0;
    if (log) {
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < cols; j++) dot += gr[j];
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) o[j] = gr[j] - expFast(yr[j]) * dot;
    } else {
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < cols; j++) dot += gr[j] * yr[j];
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) o[j] = yr[j] * (gr[j] - dot);
    }
  }
  return a.env().Undefined();
}

}  // namespace peftjs
