// Merging: the hot loops of model merging — f32 → f16 casts, weighted sums that read checkpoint dtypes
// directly, magnitude histograms and bands (TIES / Breadcrumbs trimming by rank), and the fused TIES sign
// election + disjoint mean over k task vectors.
#include <omp.h>
#include <algorithm>
#include <cstring>
#include <vector>
#include "fused.h"
#include "loops.h"
#include "registry.h"

using namespace peftjs;

namespace {

// The dtypes scaleAdd reads (CastDType in kernels.ts).
enum CastDType { kF32 = 0, kBF16 = 1, kF16 = 2 };

// y = beta·y + alpha·cvt(x); beta = 0 overwrites y without reading it, beta = 1 is axpy's y += alpha·x (the same
// rounding, so a streamed linear merge equals the whole-tensor one bit for bit).
template <typename T, typename Cvt>
void scaleAddLoop(const T* x, float* y, int64_t n, float alpha, float beta, Cvt cvt) {
  if (beta == 0.f)
    parallelFor(n, [=](int64_t i) { y[i] = alpha * cvt(x[i]); });
  else if (beta == 1.f)
    parallelFor(n, [=](int64_t i) { y[i] += alpha * cvt(x[i]); });
  else
    parallelFor(n, [=](int64_t i) { y[i] = beta * y[i] + alpha * cvt(x[i]); });
}

}  // namespace

PEFTJS_EXPORT(castF32ToF16) {
  Args a(info, "castF32ToF16");
  return castKernel<f32ToF16>(a, a.f32(0), a.u16(1));
}

PEFTJS_EXPORT(scaleAdd) {
  Args a(info, "scaleAdd");
  const int64_t dtype = a.int64(0);
  float* y = a.f32(2);
  int64_t n = sizeArg(a, 3, "n");
  const float alpha = static_cast<float>(a.num(4)), beta = static_cast<float>(a.num(5));
  need(a, 1, "x", n);
  need(a, 2, "y", n);
  switch (dtype) {
    case kF32: scaleAddLoop(a.f32(1), y, n, alpha, beta, [](float v) { return v; }); break;
    case kBF16: scaleAddLoop(a.u16(1), y, n, alpha, beta, [](uint16_t v) { return bf16ToF32(v); }); break;
    case kF16: scaleAddLoop(a.u16(1), y, n, alpha, beta, [](uint16_t v) { return f16ToF32(v); }); break;
    default: a.fail("dtype must be 0 (F32), 1 (BF16) or 2 (F16), got " + std::to_string(dtype));
  }
  return info.Env().Undefined();
}

// Per-thread histograms over contiguous index ranges, summed into `hist` (which accumulates). Magnitudes cluster,
// so consecutive entries often hit the same bin, and one histogram would chain every increment on the previous
// one's store; entry i goes to sub-histogram i mod 4 instead.
PEFTJS_EXPORT(magnitudeHistogram) {
  Args a(info, "magnitudeHistogram");
  const uint32_t* x = reinterpret_cast<const uint32_t*>(a.f32(0));
  int64_t n = sizeArg(a, 1, "n");
  int32_t* hist = a.i32(2);
  const int64_t bins = sizeArg(a, 3, "bins"), shift = sizeArg(a, 4, "shift"), matchShift = sizeArg(a, 5, "matchShift");
  const int64_t match = sizeArg(a, 6, "match");
  if (bins == 0 || bins > (1 << 16) || (bins & (bins - 1)) != 0) a.fail("bins must be a power of two ≤ 65536, got " + std::to_string(bins));
  if (shift > 31 || matchShift > 31) a.fail("shift and matchShift must be ≤ 31");
  need(a, 0, "x", n);
  need(a, 2, "hist", bins);
  const uint32_t mask = static_cast<uint32_t>(bins - 1), want = static_cast<uint32_t>(match);
  const int threads = n >= kParallelMin ? omp_get_max_threads() : 1;
  constexpr int kWays = 4;
  std::vector<int32_t> local(static_cast<size_t>(threads) * kWays * bins, 0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int32_t* h = local.data() + static_cast<size_t>(t) * kWays * bins;
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    int64_t i = begin;
    for (; i + kWays <= end; i += kWays)
      for (int u = 0; u < kWays; u++) {
        const uint32_t b = x[i + u] & 0x7FFFFFFFu;
        if ((b >> matchShift) == want) h[u * bins + ((b >> shift) & mask)]++;
      }
    for (; i < end; i++) {
      const uint32_t b = x[i] & 0x7FFFFFFFu;
      if ((b >> matchShift) == want) h[(b >> shift) & mask]++;
    }
  }
  for (int64_t t = 0; t < threads * kWays; t++)
    for (int64_t j = 0; j < bins; j++) hist[j] += local[static_cast<size_t>(t) * bins + j];
  return info.Env().Undefined();
}

// Entries equal to a boundary are ranked by index, so each thread first counts the boundary entries in its range;
// a prefix over threads then gives every thread the count before its range, and the second pass masks. The mask
// pass goes in blocks: a block without boundary entries (nearly all of them) is a vectorised compare.
PEFTJS_EXPORT(keepMagnitudeBand) {
  Args a(info, "keepMagnitudeBand");
  uint32_t* x = reinterpret_cast<uint32_t*>(a.f32(0));
  int64_t n = sizeArg(a, 1, "n");
  const int64_t low = static_cast<int64_t>(a.num(2)), lowSkip = static_cast<int64_t>(a.num(3));
  const int64_t high = static_cast<int64_t>(a.num(4)), highTake = static_cast<int64_t>(a.num(5));
  int32_t* seen = a.i32(6);
  need(a, 0, "x", n);
  need(a, 6, "seen", 2);
  // Magnitudes are < 2³¹, so clamping the boundaries to [−1, 2³¹] keeps every comparison in 32-bit integers.
  const int64_t lo = std::max<int64_t>(-1, std::min<int64_t>(low, 1LL << 31));
  const int64_t hi = std::max<int64_t>(-1, std::min<int64_t>(high, 1LL << 31));
  const int threads = n >= kParallelMin ? omp_get_max_threads() : 1;
  std::vector<int64_t> lowBefore(threads + 1, 0), highBefore(threads + 1, 0);
  constexpr int64_t kBlock = 256;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    int64_t cl = 0, ch = 0;
#pragma omp simd reduction(+ : cl, ch)
    for (int64_t i = begin; i < end; i++) {
      const int64_t b = x[i] & 0x7FFFFFFFu;
      cl += b == lo;
      ch += b == hi;
    }
    lowBefore[t + 1] = cl;
    highBefore[t + 1] = ch;
#pragma omp barrier
#pragma omp single
    for (int k = 0; k < nt; k++) {
      lowBefore[k + 1] += lowBefore[k];
      highBefore[k + 1] += highBefore[k];
    }
    int64_t sl = seen[0] + lowBefore[t], sh = seen[1] + highBefore[t];
    for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
      const int64_t b1 = std::min(end, b0 + kBlock);
      int64_t boundary = 0;
#pragma omp simd reduction(+ : boundary)
      for (int64_t i = b0; i < b1; i++) {
        const int64_t b = x[i] & 0x7FFFFFFFu;
        boundary += (b == lo) | (b == hi);
      }
      // First the boundary entries, in order (a minority, so this branch is mostly predicted): the dropped ones
      // become 0. Then, vectorised, zero everything outside the band that is not a (kept) boundary entry.
      if (boundary > 0) {
        for (int64_t i = b0; i < b1; i++) {
          const int64_t b = x[i] & 0x7FFFFFFFu;
          if (b != lo && b != hi) continue;
          if ((b == lo && sl < lowSkip) || (b == hi && sh >= highTake)) x[i] = 0;
          sl += b == lo;
          sh += b == hi;
        }
      }
#pragma omp simd
      for (int64_t i = b0; i < b1; i++) {
        const int64_t b = x[i] & 0x7FFFFFFFu;
        x[i] = (b > lo && b < hi) || b == lo || b == hi ? x[i] : 0u;
      }
    }
  }
  seen[0] += static_cast<int32_t>(lowBefore[threads]);
  seen[1] += static_cast<int32_t>(highBefore[threads]);
  return info.Env().Undefined();
}

// Tiles of entries: per tile, the vote, then the agreeing sums, row by row over the k task vectors, so every inner
// loop runs over contiguous entries and vectorises.
PEFTJS_EXPORT(tiesCombine) {
  Args a(info, "tiesCombine");
  const float* d = a.f32(0);
  const int64_t k = sizeArg(a, 1, "k"), n = sizeArg(a, 2, "n");
  const float* w = a.f32(3);
  const float* base = a.f32(4);
  float* out = a.f32(5);
  const double lambda = a.num(6);
  const bool normalize = a.flag(7), byCount = a.flag(8);
  need(a, 0, "deltas", k * n);
  need(a, 3, "w", k);
  need(a, 4, "base", n);
  need(a, 5, "out", n);
  constexpr int64_t kTile = 512;
  const int64_t tiles = (n + kTile - 1) / kTile;
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t t = 0; t < tiles; t++) {
    const int64_t i0 = t * kTile, m = std::min(kTile, n - i0);
    double vote[kTile], acc[kTile], agree[kTile];
    for (int64_t i = 0; i < m; i++) vote[i] = acc[i] = agree[i] = 0;
    for (int64_t j = 0; j < k; j++) {
      const float* dj = d + j * n + i0;
      const double wj = w[j];
#pragma omp simd
      for (int64_t i = 0; i < m; i++) {
        const double v = wj * dj[i];
        vote[i] += byCount ? static_cast<double>((v > 0) - (v < 0)) : v;
      }
    }
    for (int64_t j = 0; j < k; j++) {
      const float* dj = d + j * n + i0;
      const double wj = w[j];
#pragma omp simd
      for (int64_t i = 0; i < m; i++) {
        const double v = wj * dj[i];
        const double elected = vote[i] >= 0 ? 1.0 : -1.0;
        const bool same = v * elected > 0;  // zeros never agree
        acc[i] += same ? v : 0.0;
        agree[i] += same ? wj : 0.0;
      }
    }
#pragma omp simd
    for (int64_t i = 0; i < m; i++)
      out[i0 + i] = static_cast<float>(base[i0 + i] + lambda * acc[i] / (normalize && agree[i] != 0 ? agree[i] : 1));
  }
  return info.Env().Undefined();
}
