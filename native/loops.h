// Loop drivers for the element-wise kernels: a flat parallel loop, and N-d strided iteration over an index space
// with one stride list per operand (element strides, 0 = broadcast).
#pragma once
#include <omp.h>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>
#include "fused.h"

namespace peftjs {

// f(i) for i < n: OpenMP threads for large n, the calling thread below kParallelMin. `f` must be simple enough to
// inline and vectorise (no loop-carried dependencies). Each thread runs its own copy of `f`: reached through the
// shared one, its captures could alias the arrays it stores to (a uint32_t capture and a uint32_t* output), so the
// compiler would reload them every iteration and not vectorise.
template <typename F>
inline void parallelFor(int64_t n, F f) {
#pragma omp parallel if (n >= kParallelMin)
  {
    const F local = f;
#pragma omp for simd schedule(static)
    for (int64_t i = 0; i < n; i++) local(i);
  }
}

// The body of every dtype-cast kernel `(src, dst, n)`: sizes checked, then dst[i] = Convert(src[i]) in parallel.
// Convert is a template argument, not a function pointer passed at run time, so it inlines and the loop vectorises.
template <auto Convert, typename S, typename D>
inline Napi::Value castKernel(const Args& a, const S* src, D* dst) {
  const int64_t n = sizeArg(a, 2, "n");
  need(a, 0, "src", n);
  need(a, 1, "dst", n);
  parallelFor(n, [=](int64_t i) { dst[i] = Convert(src[i]); });
  return a.env().Undefined();
}

constexpr int kMaxRank = 8;

// An index space of NOp operands after validation and coalescing (see readStrided).
template <int NOp>
struct Strided {
  int rank = 0;
  int64_t total = 1;
  int64_t shape[kMaxRank];
  int64_t stride[NOp][kMaxRank];
};

// One operand of a strided kernel: its typed-array argument, its stride-list argument (-1: contiguous, as for
// outputs) and its name for error messages.
struct Operand {
  size_t array;
  int strides;
  const char* name;
};

// Reads the shape (argument `shapeArg`) and each operand's strides, checks rank ≤ 8, non-negative sizes and
// strides, and that every operand's array holds the last element it would touch. Then drops size-1 dimensions
// and merges neighbouring dimensions that are contiguous in every operand, so e.g. same-shape contiguous
// operands become one flat run and the innermost run is as long as possible.
template <int NOp>
Strided<NOp> readStrided(const Args& a, size_t shapeArg, const Operand (&ops)[NOp]) {
  std::vector<int64_t> shape = a.ints(shapeArg);
  int rank = static_cast<int>(shape.size());
  if (rank > kMaxRank) a.fail("shape has rank " + std::to_string(rank) + ", at most 8 is supported");
  Strided<NOp> s;
  for (int d = 0; d < rank; d++) {
    if (shape[d] < 0) a.fail("shape[" + std::to_string(d) + "] is negative");
    s.total *= shape[d];
  }
  int64_t st[NOp][kMaxRank];
  for (int k = 0; k < NOp; k++) {
    if (ops[k].strides < 0) {
      int64_t c = 1;
      for (int d = rank - 1; d >= 0; d--) st[k][d] = c, c *= shape[d];
    } else {
      std::vector<int64_t> v = a.ints(ops[k].strides);
      if (static_cast<int>(v.size()) != rank)
        a.fail(std::string(ops[k].name) + " strides have " + std::to_string(v.size()) + " entries for a rank-" +
               std::to_string(rank) + " shape");
      for (int d = 0; d < rank; d++) {
        if (v[d] < 0) a.fail(std::string(ops[k].name) + " stride " + std::to_string(d) + " is negative");
        st[k][d] = v[d];
      }
    }
    if (s.total > 0) {
      int64_t last = 0;
      for (int d = 0; d < rank; d++) last += (shape[d] - 1) * st[k][d];
      need(a, ops[k].array, ops[k].name, last + 1);
    }
  }
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    bool merge = s.rank > 0;
    for (int k = 0; k < NOp && merge; k++) merge = s.stride[k][s.rank - 1] == st[k][d] * shape[d];
    if (merge) {
      s.shape[s.rank - 1] *= shape[d];
      for (int k = 0; k < NOp; k++) s.stride[k][s.rank - 1] = st[k][d];
    } else {
      s.shape[s.rank] = shape[d];
      for (int k = 0; k < NOp; k++) s.stride[k][s.rank] = st[k][d];
      s.rank++;
    }
  }
  if (s.rank == 0) {  // a single element (or none)
    s.rank = 1;
    s.shape[0] = s.total;
    for (int k = 0; k < NOp; k++) s.stride[k][0] = 1;
  }
  return s;
}

// Calls run(off, n, inner) for consecutive runs along the innermost dimension, where off[k] is operand k's
// element offset of the run's first element, n the run length and inner[k] operand k's innermost stride. The
// flat index range is split evenly over the threads (so a single long run is split too) when it is large.
template <int NOp, typename Run>
void forEachRun(const Strided<NOp>& s, Run run) {
  if (s.total == 0) return;
  const int r = s.rank;
  int64_t inner[NOp];
  for (int k = 0; k < NOp; k++) inner[k] = s.stride[k][r - 1];
#pragma omp parallel if (s.total >= kParallelMin)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t pos = s.total * t / nt;
    const int64_t end = s.total * (t + 1) / nt;
    int64_t idx[kMaxRank], off[NOp] = {};
    int64_t rem = pos;
    for (int d = r - 1; d >= 0; d--) {
      idx[d] = rem % s.shape[d];
      rem /= s.shape[d];
      for (int k = 0; k < NOp; k++) off[k] += idx[d] * s.stride[k][d];
    }
    while (pos < end) {
      const int64_t n = std::min(s.shape[r - 1] - idx[r - 1], end - pos);
      run(static_cast<const int64_t*>(off), n, static_cast<const int64_t*>(inner));
      pos += n;
      idx[r - 1] += n;
      for (int k = 0; k < NOp; k++) off[k] += n * inner[k];
      for (int d = r - 1; d > 0 && idx[d] == s.shape[d]; d--) {  // carry into the outer dimensions
        idx[d] = 0;
        idx[d - 1]++;
        for (int k = 0; k < NOp; k++) off[k] += s.stride[k][d - 1] - s.shape[d] * s.stride[k][d];
      }
    }
  }
}

}  // namespace peftjs
