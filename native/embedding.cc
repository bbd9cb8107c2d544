// Token embedding lookup (f32 or bf16 table) and its scatter-add backward.
#include <omp.h>
#include <algorithm>
#include "fused.h"
#include "registry.h"

namespace peftjs {

// Throws unless every id is in [0, vocab), naming the first bad id and its position.
static void checkIds(const Args& a, const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= vocab)
      a.fail("id " + std::to_string(ids[i]) + " at position " + std::to_string(i) + " is outside [0, " +
             std::to_string(vocab) + ")");
}

PEFTJS_EXPORT(embedding) {
  Args a(info, "embedding");
  bool bf16 = a.flag(1);
  const void* table = bf16 ? static_cast<const void*>(a.u16(0)) : static_cast<const void*>(a.f32(0));
  const int32_t* ids = a.i32(2);
  float* out = a.f32(3);
  int64_t n = sizeArg(a, 4, "n"), dim = sizeArg(a, 5, "dim"), vocab = sizeArg(a, 6, "vocab");
  need(a, 0, "table", vocab * dim);
  need(a, 2, "ids", n);
  need(a, 3, "out", n * dim);
  checkIds(a, ids, n, vocab);
#pragma omp parallel for schedule(static) if (n * dim >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    float* o = out + i * dim;
    int64_t row = static_cast<int64_t>(ids[i]) * dim;
    if (bf16) {
      const uint16_t* src = static_cast<const uint16_t*>(table) + row;
#pragma omp simd
      for (int64_t j = 0; j < dim; j++) o[j] = bf16ToF32(src[j]);
    } else {
      std::copy_n(static_cast<const float*>(table) + row, dim, o);
    }
  }
  return a.env().Undefined();
}

// gTable[ids[i], :] += gy[i, :]. Threads split the dim axis (in cache-line multiples), so duplicate ids
// accumulate in order within one thread and no two threads touch the same element.
PEFTJS_EXPORT(embeddingBackward) {
  Args a(info, "embeddingBackward");
  const int32_t* ids = a.i32(0);
  const float* gy = a.f32(1);
  float* gt = a.f32(2);
  int64_t n = sizeArg(a, 3, "n"), dim = sizeArg(a, 4, "dim");
  need(a, 0, "ids", n);
  need(a, 1, "gy", n * dim);
  checkIds(a, ids, n, dim ? static_cast<int64_t>(a.length(2)) / dim : 0);
  int nt = n * dim >= kParallelMin ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t chunk = (dim + omp_get_num_threads() - 1) / omp_get_num_threads();
    chunk = (chunk + 15) / 16 * 16;
    int64_t j0 = std::min(dim, chunk * omp_get_thread_num()), j1 = std::min(dim, j0 + chunk);
    for (int64_t i = 0; i < n; i++) {
      float* dst = gt + static_cast<int64_t>(ids[i]) * dim;
      const float* src = gy + i * dim;
#pragma omp simd
      for (int64_t j = j0; j < j1; j++) dst[j] += src[j];
    }
  }
  return a.env().Undefined();
}

}  // namespace peftjs
