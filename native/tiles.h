// Register-tiled small products for the kernels whose GEMMs have one small dimension: LoRA's rank-r products
// (gemm.cc) and the per-block products of fused attention (attention.cc).
//
//   C[i, n] = alpha·Σ_k A(i, k)·P[k·ldp + n] + beta·C[i·ldc + n]      i < M, n < N, k < K
//
// A is read through two strides, A(i, k) = a[i·ai + k·ak], so either orientation serves; P is row-major with its
// rows ldp apart. A and P are f32, or bf16 bits (widened to f32 as they are loaded; fp32 accumulation). C is cut into tiles of RB rows × NV vectors whose accumulators stay in registers over the whole
// k loop: per k, NV loads of P, RB broadcasts of A and RB·NV FMAs. beta = 0 overwrites C without reading it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace peftjs {

template <typename T>
struct TileProduct {
  const T* a;
  int64_t ai, ak;
  const T* p;
  int64_t ldp;
  float* c;
  int64_t ldc;
  int64_t M, N, K;
  float alpha, beta;
};

inline float widen(float x) { return x; }
inline float widen(uint16_t bf16) {
  uint32_t u = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define PEFTJS_TILES_AVX512 1

// 16 floats in a zmm register, or 8 in a ymm one (for N ≤ 8: a half-empty zmm would cost a full one).
struct Zmm {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static V load(Mask m, const uint16_t* p) {  // bf16 → f32: the bits move to the upper half
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
  static void store(Mask m, float* p, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};
struct Ymm {
  using V = __m256;
  using Mask = __mmask8;
  static constexpr int64_t kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(Mask m, const float* p) { return _mm256_maskz_loadu_ps(m, p); }
  static V load(Mask m, const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_maskz_loadu_epi16(m, p)), 16));
  }
  static void store(Mask m, float* p, V v) { _mm256_mask_storeu_ps(p, m, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

// One tile: rows [i0, i0 + RB), columns [n0, n0 + nCols), nCols ≤ lanes·NV.
template <typename W, int RB, int NV, typename T>
void productTile(const TileProduct<T>& t, int64_t i0, int64_t n0, int64_t nCols) {
  using V = typename W::V;
  // Everything the k loop reads in locals, and every loop over the tile fully unrolled: GCC then keeps the RB·NV
  // accumulators in registers (otherwise it stores them to the stack on every k, halving the speed).
  const int64_t K = t.K, ldp = t.ldp, ai = t.ai, ak = t.ak;
  const T* a = t.a + i0 * ai;
  const T* p = t.p + n0;
  typename W::Mask mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    int64_t left = std::clamp<int64_t>(nCols - W::kLanes * v, 0, W::kLanes);
    mask[v] = static_cast<typename W::Mask>((1u << left) - 1);
  }
  V acc[RB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = W::zero();
  for (int64_t k = 0; k < K; k++, p += ldp, a += ak) {
    V pv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) pv[v] = W::load(mask[v], p + W::kLanes * v);
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++) {
      V x = W::set1(widen(a[r * ai]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = W::fma(x, pv[v], acc[r][v]);
    }
  }
  const V va = W::set1(t.alpha), vb = W::set1(t.beta);
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float* dst = t.c + (i0 + r) * t.ldc + n0 + W::kLanes * v;
      V y = W::mul(acc[r][v], va);
      if (t.beta != 0.f) y = W::fma(vb, W::load(mask[v], dst), y);
      W::store(mask[v], dst, y);
    }
}

// A tiling of C: RBmax rows × NV vectors of W per tile; `run(t, i)` computes tile i (row-tile major).
template <typename W, int RBmax, int NV>
struct Tiling {
  static constexpr int64_t kWidth = W::kLanes * NV;
  template <typename T>
  static int64_t count(const TileProduct<T>& t) {
    return (t.M + RBmax - 1) / RBmax * ((t.N + kWidth - 1) / kWidth);
  }
  template <typename T>
  static void run(const TileProduct<T>& t, int64_t i) {
    const int64_t colTiles = (t.N + kWidth - 1) / kWidth, i0 = i / colTiles * RBmax, n0 = i % colTiles * kWidth;
    const int rb = static_cast<int>(std::min<int64_t>(RBmax, t.M - i0));
    byRows<T>(rb, std::make_integer_sequence<int, RBmax>{})(t, i0, n0, std::min(kWidth, t.N - n0));
  }

 private:
  template <typename T>
  using Fn = void (*)(const TileProduct<T>&, int64_t, int64_t, int64_t);
  // The tile kernel for rb rows (1..RBmax): the last row tile may be partial.
  template <typename T, int... R>
  static Fn<T> byRows(int rb, std::integer_sequence<int, R...>) {
    static constexpr Fn<T> table[] = {productTile<W, R + 1, NV, T>...};
    return table[rb - 1];
  }
};

// Calls f(Tiling<…>{}) with the tiling suited to N: one ymm for N ≤ 8 (8-row tiles), one zmm for N ≤ 16, two
// (6 rows) for N ≤ 32, else four (4 rows): at most 16 accumulators.
template <typename F>
void withTiling(int64_t N, F f) {
  if (N <= 8) return f(Tiling<Ymm, 8, 1>{});
  if (N <= 16) return f(Tiling<Zmm, 8, 1>{});
  if (N <= 32) return f(Tiling<Zmm, 6, 2>{});
  return f(Tiling<Zmm, 4, 4>{});
}

// The whole product on the calling thread.
template <typename T>
void tileProduct(const TileProduct<T>& t) {
  if (t.M == 0 || t.N == 0) return;
  withTiling(t.N, [&](auto tiling) {
    for (int64_t i = 0, n = tiling.count(t); i < n; i++) tiling.run(t, i);
  });
}

#else

// Portable fallback of the same product.
template <typename T>
void tileProduct(const TileProduct<T>& t) {
  for (int64_t i = 0; i < t.M; i++)
    for (int64_t n = 0; n < t.N; n++) {
      float acc = 0;
      for (int64_t k = 0; k < t.K; k++) acc += widen(t.a[i * t.ai + k * t.ak]) * widen(t.p[k * t.ldp + n]);
      float* dst = t.c + i * t.ldc + n;
      *dst = t.beta == 0.f ? t.alpha * acc : t.alpha * acc + t.beta * *dst;
    }
}

#endif

}  // namespace peftjs
