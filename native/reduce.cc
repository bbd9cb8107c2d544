// Reductions with double-precision accumulation: axis sums and the sum of squares for gradient norms.
#include <algorithm>
#include "fused.h"
#include "loops.h"
#include "registry.h"

using namespace peftjs;

namespace {

// Σ f(x[i]) for i < n in double, threaded when n is large (and serial when already inside a parallel region).
template <typename F>
double reduce(const float* x, int64_t n, F f) {
  double acc = 0;
#pragma omp parallel for simd reduction(+ : acc) if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) acc += f(x[i]);
  return acc;
}

// Columns summed together by one work item when inner > 1: each item walks the `red` rows of its column block.
constexpr int64_t kColumnBlock = 128;

}  // namespace

PEFTJS_EXPORT(sum) {
  Args a(info, "sum");
  const float* x = a.f32(0);
  float* out = a.f32(1);
  const int64_t outer = sizeArg(a, 2, "outer"), red = sizeArg(a, 3, "red"), inner = sizeArg(a, 4, "inner");
  need(a, 0, "x", outer * red * inner);
  need(a, 1, "out", outer * inner);
  const bool threaded = outer * red * inner >= kParallelMin;
  if (inner == 1) {
#pragma omp parallel for if (threaded && outer > 1) schedule(static)
    for (int64_t o = 0; o < outer; o++) out[o] = static_cast<float>(reduce(x + o * red, red, [](float v) { return v; }));
  } else {
    const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for if (threaded) schedule(static)
    for (int64_t item = 0; item < outer * blocks; item++) {
      const int64_t o = item / blocks, c0 = (item % blocks) * kColumnBlock, w = std::min(kColumnBlock, inner - c0);
      double acc[kColumnBlock] = {};
      const float* xo = x + o * red * inner + c0;
      for (int64_t r = 0; r < red; r++)
        for (int64_t j = 0; j < w; j++) acc[j] += xo[r * inner + j];
      for (int64_t j = 0; j < w; j++) out[o * inner + c0 + j] = static_cast<float>(acc[j]);
    }
  }
  return info.Env().Undefined();
}

PEFTJS_EXPORT(sumSquares) {
  Args a(info, "sumSquares");
  const float* x = a.f32(0);
  const int64_t n = sizeArg(a, 1, "n");
  need(a, 0, "x", n);
  return Napi::Number::New(info.Env(), reduce(x, n, [](float v) { return static_cast<double>(v) * v; }));
}
