// Cross-entropy fused with log-softmax over logits [N, V], forward and backward.
#include "fused.h"
#include "registry.h"

namespace peftjs {

// Throws unless every target is in [0, V) or equals ignoreIndex; returns the number of rows not ignored.
static int64_t checkTargets(const Args& a, const int32_t* targets, int64_t N, int64_t V, int64_t ignoreIndex) {
  int64_t counted = 0;
  for (int64_t i = 0; i < N; i++) {
    if (targets[i] == ignoreIndex) continue;
    if (targets[i] < 0 || targets[i] >= V)
      a.fail("target " + std::to_string(targets[i]) + " at row " + std::to_string(i) + " is outside [0, " +
             std::to_string(V) + ") and is not ignoreIndex " + std::to_string(ignoreIndex));
    counted++;
  }
  return counted;
}

// losses[i] = lse_i − logits[i, t_i] (0 for ignored rows); lse[i] is written for every row.
PEFTJS_EXPORT(crossEntropy) {
  Args a(info, "crossEntropy");
  const float* logits = a.f32(0);
  const int32_t* targets = a.i32(1);
  float* losses = a.f32(2);
  float* lse = a.f32(3);
  int64_t N = sizeArg(a, 4, "N"), V = sizeArg(a, 5, "V");
  int64_t ignore = a.int64(6);
  need(a, 0, "logits", N * V);
  need(a, 1, "targets", N);
  need(a, 2, "losses", N);
  need(a, 3, "lse", N);
  int64_t counted = checkTargets(a, targets, N, V, ignore);
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t i = 0; i < N; i++) {
    const float* row = logits + i * V;
    lse[i] = logSumExp(row, V);
    losses[i] = targets[i] == ignore ? 0.f : lse[i] - row[targets[i]];
  }
  return Napi::Number::New(a.env(), static_cast<double>(counted));
}

// gl[i, :] = gy[i] · (exp(logits_i − lse_i) − onehot(t_i)); zero rows for ignored targets.
PEFTJS_EXPORT(crossEntropyBackward) {
  Args a(info, "crossEntropyBackward");
  const float* logits = a.f32(0);
  const int32_t* targets = a.i32(1);
  const float* lse = a.f32(2);
  const float* gy = a.f32(3);
  float* gl = a.f32(4);
  int64_t N = sizeArg(a, 5, "N"), V = sizeArg(a, 6, "V");
  int64_t ignore = a.int64(7);
  need(a, 0, "logits", N * V);
  need(a, 1, "targets", N);
  need(a, 2, "lse", N);
  need(a, 3, "gy", N);
  need(a, 4, "gl", N * V);
  checkTargets(a, targets, N, V, ignore);
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t i = 0; i < N; i++) {
    const float* row = logits + i * V;
    float* g = gl + i * V;
    bool ignored = targets[i] == ignore;
    float gi = ignored ? 0.f : gy[i], l = lse[i];
#pragma omp simd
    for (int64_t j = 0; j < V; j++) g[j] = gi * expFast(row[j] - l);
    if (!ignored) g[targets[i]] -= gi;
  }
  return a.env().Undefined();
}

}  // namespace peftjs
