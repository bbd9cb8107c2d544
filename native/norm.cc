// RMSNorm and LayerNorm over the rows of a [rows, cols] matrix, forward and backward. Both are one template:
// RMSNorm is LayerNorm without centring (mean = 0) and without a bias.
#include <omp.h>
#include <cmath>
#include <vector>
#include "fused.h"
#include "registry.h"

namespace peftjs {

// out = (x − μ)·rstd·w + b with rstd = 1/√(var + eps); for RMSNorm μ = 0 and var = mean(x²).
template <bool kCentered>
static void normForward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                        int64_t rows, int64_t cols, float eps) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float mu = 0;
    if (kCentered) {
#pragma omp simd reduction(+ : mu)
      for (int64_t j = 0; j < cols; j++) mu += xr[j];
      mu /= cols;
      mean[r] = mu;
    }
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < cols; j++) ss += (xr[j] - mu) * (xr[j] - mu);
    float rs = 1.f / std::sqrt(ss / cols + eps);
    rstd[r] = rs;
#pragma omp simd
    for (int64_t j = 0; j < cols; j++) o[j] = (xr[j] - mu) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
  }
}

// With x̂ = (x − μ)·rstd and ĝ = gy·w:
//   gx = rstd · (ĝ − mean(ĝ) − x̂·mean(ĝ∘x̂))   (RMSNorm drops the mean(ĝ) term)
//   gw += Σ_rows gy∘x̂,  gb += Σ_rows gy
// gw/gb are summed into per-thread partial rows first, then reduced, so threads never write the same element.
template <bool kCentered>
static void normBackward(const float* x, const float* w, const float* mean, const float* rstd, const float* gy,
                         float* gx, float* gw, float* gb, int64_t rows, int64_t cols) {
  int nt = rows * cols >= kParallelMin ? omp_get_max_threads() : 1;
  bool params = gw || gb;
  std::vector<float> part(params ? static_cast<size_t>(nt) * 2 * cols : 0, 0.f);  // per thread: [gw | gb]
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* pw = params ? part.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * cols : nullptr;
    float* pb = params ? pw + cols : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* xr = x + r * cols;
      const float* g = gy + r * cols;
      float* o = gx + r * cols;
      float mu = kCentered ? mean[r] : 0.f, rs = rstd[r];
      float gsum = 0, gdot = 0;
#pragma omp simd reduction(+ : gsum, gdot)
      for (int64_t j = 0; j < cols; j++) {
        float gh = g[j] * (w ? w[j] : 1.f);
        gsum += gh;
        gdot += gh * (xr[j] - mu) * rs;
      }
      float gmean = kCentered ? gsum / cols : 0.f, dmean = gdot / cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) {
        float xh = (xr[j] - mu) * rs;
        o[j] = rs * (g[j] * (w ? w[j] : 1.f) - gmean - xh * dmean);
      }
      if (params) {
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) {
          pw[j] += g[j] * (xr[j] - mu) * rs;
          pb[j] += g[j];
        }
      }
    }
  }
  if (!params) return;
#pragma omp parallel for schedule(static) if (nt > 1 && cols >= 1024)
  for (int64_t j = 0; j < cols; j++) {
    float sw = 0, sb = 0;
    for (int t = 0; t < nt; t++) {
      sw += part[static_cast<size_t>(t) * 2 * cols + j];
      sb += part[static_cast<size_t>(t) * 2 * cols + cols + j];
    }
    if (gw) gw[j] += sw;
    if (gb) gb[j] += sb;
  }
}

PEFTJS_EXPORT(rmsNorm) {
  Args a(info, "rmsNorm");
  const float* x = a.f32(0);
  const float* w = a.f32OrNull(1);
  float* out = a.f32(2);
  float* rstd = a.f32(3);
  int64_t rows = sizeArg(a, 4, "rows"), cols = sizeArg(a, 5, "cols");
  float eps = static_cast<float>(a.num(6));
  need(a, 0, "x", rows * cols);
  if (w) need(a, 1, "w", cols);
  need(a, 2, "out", rows * cols);
  need(a, 3, "rstd", rows);
  normForward<false>(x, w, nullptr, out, nullptr, rstd, rows, cols, eps);
  return a.env().Undefined();
}

PEFTJS_EXPORT(rmsNormBackward) {
  Args a(info, "rmsNormBackward");
  const float* x = a.f32(0);
  const float* w = a.f32OrNull(1);
  const float* rstd = a.f32(2);
  const float* gy = a.f32(3);
  float* gx = a.f32(4);
  float* gw = a.f32OrNull(5);
  int64_t rows = sizeArg(a, 6, "rows"), cols = sizeArg(a, 7, "cols");
  need(a, 0, "x", rows * cols);
  if (w) need(a, 1, "w", cols);
  need(a, 2, "rstd", rows);
  need(a, 3, "gy", rows * cols);
  need(a, 4, "gx", rows * cols);
  if (gw) need(a, 5, "gw", cols);
  normBackward<false>(x, w, nullptr, rstd, gy, gx, gw, nullptr, rows, cols);
  return a.env().Undefined();
}

PEFTJS_EXPORT(layerNorm) {
  Args a(info, "layerNorm");
  const float* x = a.f32(0);
  const float* w = a.f32OrNull(1);
  const float* b = a.f32OrNull(2);
  float* out = a.f32(3);
  float* mean = a.f32(4);
  float* rstd = a.f32(5);
  int64_t rows = sizeArg(a, 6, "rows"), cols = sizeArg(a, 7, "cols");
  float eps = static_cast<float>(a.num(8));
  need(a, 0, "x", rows * cols);
  if (w) need(a, 1, "w", cols);
  if (b) need(a, 2, "b", cols);
  need(a, 3, "out", rows * cols);
  need(a, 4, "mean", rows);
  need(a, 5, "rstd", rows);
  normForward<true>(x, w, b, out, mean, rstd, rows, cols, eps);
  return a.env().Undefined();
}

PEFTJS_EXPORT(layerNormBackward) {
  Args a(info, "layerNormBackward");
  const float* x = a.f32(0);
  const float* w = a.f32OrNull(1);
  const float* mean = a.f32(2);
  const float* rstd = a.f32(3);
  const float* gy = a.f32(4);
  float* gx = a.f32(5);
  float* gw = a.f32OrNull(6);
  float* gb = a.f32OrNull(7);
  int64_t rows = sizeArg(a, 8, "rows"), cols = sizeArg(a, 9, "cols");
  need(a, 0, "x", rows * cols);
  if (w) need(a, 1, "w", cols);
  need(a, 2, "mean", rows);
  need(a, 3, "rstd", rows);
  need(a, 4, "gy", rows * cols);
  need(a, 5, "gx", rows * cols);
  if (gw) need(a, 6, "gw", cols);
  if (gb) need(a, 7, "gb", cols);
  normBackward<true>(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
  return a.env().Undefined();
}

}  // namespace peftjs
