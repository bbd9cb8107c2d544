// Heterogeneous-batch LoRA (Punica's BGMV, S-LoRA's unified pool): every row of a batch applies its own adapter,
//   y[r, :] += scale[a] · B_a · (A_a · x[r, :])      with a = rowAdapter[r] (−1: no adapter, row untouched),
// in one call, so a batch over N distinct adapters costs about what one adapter costs. The adapters live in
// one pool per target layer, at rank granularity: adapter a owns pool rows [offset[a], offset[a] + rank[a]) of
// A (rows of length inF) and of Bᵀ (rows of length outF; B is stored transposed so each rank's column of B is
// one contiguous row and the expand step is a run of axpys). Ranks may differ per adapter.
#include <omp.h>
#include <algorithm>
#include <vector>
#include "fused.h"
#include "registry.h"

namespace peftjs {

// loraGather(x, y, rowAdapter, a, bT, offset, rank, scale, rows, inF, outF, nAdapters)
PEFTJS_EXPORT(loraGather) {
  Args a(info, "loraGather");
  const float* x = a.f32(0);
  float* y = a.f32(1);
  const int32_t* rowAdapter = a.i32(2);
  const float* A = a.f32(3);
  const float* Bt = a.f32(4);
  const int32_t* offset = a.i32(5);
  const int32_t* rank = a.i32(6);
  const float* scale = a.f32(7);
  int64_t rows = sizeArg(a, 8, "rows"), inF = sizeArg(a, 9, "inF"), outF = sizeArg(a, 10, "outF");
  int64_t nAdapters = sizeArg(a, 11, "nAdapters");
  need(a, 0, "x", rows * inF);
  need(a, 1, "y", rows * outF);
  need(a, 2, "rowAdapter", rows);
  need(a, 5, "offset", nAdapters);
  need(a, 6, "rank", nAdapters);
  need(a, 7, "scale", nAdapters);
  int64_t poolA = inF ? static_cast<int64_t>(a.length(3)) / inF : 0;
  int64_t poolB = outF ? static_cast<int64_t>(a.length(4)) / outF : 0;
  // Validate every adapter a row uses before any thread starts.
  int64_t maxRank = 0, work = 0;
  for (int64_t r = 0; r < rows; r++) {
    int32_t id = rowAdapter[r];
    if (id == -1) continue;
    if (id < -1 || id >= nAdapters)
      a.fail("rowAdapter[" + std::to_string(r) + "] = " + std::to_string(id) + " is outside [-1, " + std::to_string(nAdapters) + ")");
    int64_t o = offset[id], k = rank[id];
    if (o < 0 || k < 0 || o + k > poolA || o + k > poolB)
      a.fail("adapter " + std::to_string(id) + " (offset " + std::to_string(o) + ", rank " + std::to_string(k) +
             ") lies outside the pools (" + std::to_string(poolA) + " rows of A, " + std::to_string(poolB) + " rows of bT)");
    maxRank = std::max(maxRank, k);
    work += k * (inF + outF);
  }
  if (maxRank == 0) return a.env().Undefined();
#pragma omp parallel if (work >= kParallelMin)
  {
    std::vector<float> h(maxRank);
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < rows; r++) {
      int32_t id = rowAdapter[r];
      if (id < 0 || rank[id] == 0) continue;
      int64_t o = offset[id], k = rank[id];
      const float* xr = x + r * inF;
      // shrink: h = scale · A_a · x_r
      for (int64_t j = 0; j < k; j++) {
        const float* Aj = A + (o + j) * inF;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < inF; i++) s += Aj[i] * xr[i];
        h[j] = s * scale[id];
      }
      // expand: y_r += Σ_j h_j · Bᵀ_a[j, :]
      float* yr = y + r * outF;
      for (int64_t j = 0; j < k; j++) {
        const float* Bj = Bt + (o + j) * outF;
        float hj = h[j];
#pragma omp simd
        for (int64_t i = 0; i < outF; i++) yr[i] += hj * Bj[i];
      }
    }
  }
  return a.env().Undefined();
}

}  // namespace peftjs
