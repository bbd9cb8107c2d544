// Batched row-major GEMM with fp32 accumulation: f32 through OpenBLAS cblas_sgemm, bf16 through oneDNN matmul
// (bf16 source and weights, f32 destination). Transposes and batch strides are expressed as leading dimensions /
// memory-descriptor strides, so operands are never copied.
#include <cblas.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <vector>
#include "fused.h"
#include "registry.h"

using namespace peftjs;

namespace {

enum class GemmDType { F32 = 0, BF16 = 1 };

// One gemm call's geometry: for b < batch, C_b (at c + b·strideC, [M,N]) = alpha·op(A_b)·op(B_b) + beta·C_b.
struct Gemm {
  int64_t batch, M, N, K;
  bool transA, transB;
  int64_t strideA, strideB, strideC;

  // The same call restricted to one batch entry.
  Gemm single() const { return {1, M, N, K, transA, transB, 0, 0, 0}; }
};

// ---------------------------------------------------------------- f32 with a small dimension: own loops
// LoRA's products have one dimension of size r (≤ 64): x·Aᵀ [N,r], t·Bᵀ (K = r), g·B, u·A, uᵀ·x (M = r), gᵀ·t.
// OpenBLAS reaches 3–20 GFLOP/s on them (it packs for large square tiles); they are memory-bound, so a loop that
// streams the large operand once with the small one in cache does better. One register-tiled kernel serves all:
// C[i, n] = alpha·Σ_k A(i, k)·P[k, n] + beta·C[i, n] with A read through strides (either orientation) and P
// row-major [K, N] (op(B), packed when B is stored transposed — one of K, N is small, so the copy is too).

constexpr int64_t kSmallDim = 64;      // the small dimension this path takes (larger: OpenBLAS)
constexpr int64_t kSkinnyParallel = 1 << 18;  // multiply-adds below which the path stays on the calling thread

#if defined(__AVX512F__)

// 16 floats in a zmm register, or 8 in a ymm one (for N ≤ 8, e.g. r = 8: a half-empty zmm would cost a full one).
struct Zmm {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
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
  static void store(Mask m, float* p, V v) { _mm256_mask_storeu_ps(p, m, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

// One RB×(lanes·NV) tile of C (rows i, columns n < nCols ≤ lanes·NV), reading A(i, k) = a[i·ai + k·ak] and P
// rows ldp apart. Accumulators stay in registers over the whole k loop.
template <typename W, int RB, int NV>
void skinnyTile(const float* a, int64_t ai, int64_t ak, const float* p, int64_t ldp, float* c, int64_t ldc,
                int64_t K, int64_t nCols, float alpha, float beta) {
  using V = typename W::V;
  typename W::Mask mask[NV];
  for (int v = 0; v < NV; v++) {
    int64_t left = std::clamp<int64_t>(nCols - W::kLanes * v, 0, W::kLanes);
    mask[v] = static_cast<typename W::Mask>((1u << left) - 1);
  }
  V acc[RB][NV];
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = W::zero();
  for (int64_t k = 0; k < K; k++) {
    V pv[NV];
    for (int v = 0; v < NV; v++) pv[v] = W::load(mask[v], p + k * ldp + W::kLanes * v);
    for (int r = 0; r < RB; r++) {
      V x = W::set1(a[r * ai + k * ak]);
      for (int v = 0; v < NV; v++) acc[r][v] = W::fma(x, pv[v], acc[r][v]);
    }
  }
  const V va = W::set1(alpha), vb = W::set1(beta);
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < NV; v++) {
      float* dst = c + r * ldc + W::kLanes * v;
      V y = W::mul(acc[r][v], va);
      if (beta != 0.f) y = W::fma(vb, W::load(mask[v], dst), y);
      W::store(mask[v], dst, y);
    }
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int64_t, int64_t,
                        float, float);

// The tile kernel for rb rows (1..RBmax) of NV vectors.
template <typename W, int NV, int... R>
TileFn tileFor(int rb, std::integer_sequence<int, R...>) {
  static constexpr TileFn table[] = {skinnyTile<W, R + 1, NV>...};
  return table[rb - 1];
}

// C[M,N] = alpha·op(A)·P + beta·C with P row-major [K, N] (ld N), C ld N, in tiles of RBmax rows × lanes·NV
// columns, run in parallel.
template <typename W, int RBmax, int NV>
void skinnyTiles(const Gemm& g, const float* a, const float* p, float* c, float alpha, float beta) {
  const int64_t ai = g.transA ? 1 : g.K, ak = g.transA ? g.M : 1, width = W::kLanes * NV;
  const int64_t rowTiles = (g.M + RBmax - 1) / RBmax, colTiles = (g.N + width - 1) / width;
#pragma omp parallel for schedule(static) if (g.M * g.N * g.K >= kSkinnyParallel)
  for (int64_t t = 0; t < rowTiles * colTiles; t++) {
    const int64_t i0 = (t / colTiles) * RBmax, n0 = (t % colTiles) * width;
    const int rb = static_cast<int>(std::min<int64_t>(RBmax, g.M - i0));
    tileFor<W, NV>(rb, std::make_integer_sequence<int, RBmax>{})(a + i0 * ai, ai, ak, p + n0, g.N, c + i0 * g.N + n0,
                                                                  g.N, g.K, std::min(width, g.N - n0), alpha, beta);
  }
}

// Whether skinnySgemm takes `g`: one of M, N, K small (M = 1 is a matrix-vector product, left to sgemv).
bool isSkinny(const Gemm& g) { return g.M > 1 && std::min({g.M, g.N, g.K}) <= kSmallDim; }

// One batch entry of a skinny product.
void skinnySgemm(const Gemm& g, const float* a, const float* b, float* c, float alpha, float beta) {
  const float* p = b;
  if (g.transB) {  // pack op(B) = Bᵀ as [K, N]; B is stored [N, K]
    static thread_local std::vector<float> packed;
    packed.resize(g.K * g.N);
    for (int64_t n = 0; n < g.N; n++)
      for (int64_t k = 0; k < g.K; k++) packed[k * g.N + n] = b[n * g.K + k];
    p = packed.data();
  }
  if (g.N <= 8)
    skinnyTiles<Ymm, 8, 1>(g, a, p, c, alpha, beta);
  else if (g.N <= 16)
    skinnyTiles<Zmm, 8, 1>(g, a, p, c, alpha, beta);
  else if (g.N <= 32)
    skinnyTiles<Zmm, 6, 2>(g, a, p, c, alpha, beta);
  else
    skinnyTiles<Zmm, 4, 4>(g, a, p, c, alpha, beta);
}
#else
bool isSkinny(const Gemm&) { return false; }
void skinnySgemm(const Gemm&, const float*, const float*, float*, float, float) {}
#endif

// ---------------------------------------------------------------- f32: OpenBLAS

void sgemm(const Gemm& g, const float* a, const float* b, float* c, float alpha, float beta) {
  if (isSkinny(g)) {
    for (int64_t i = 0; i < g.batch; i++)
      skinnySgemm(g.single(), a + i * g.strideA, b + i * g.strideB, c + i * g.strideC, alpha, beta);
    return;
  }
  const blasint lda = static_cast<blasint>(g.transA ? g.M : g.K), ldb = static_cast<blasint>(g.transB ? g.K : g.N);
  if (g.M == 1) {
    // One row (decoding a token): a matrix-vector product. A's single row is contiguous either way; c = op(B)ᵀ·a.
    for (int64_t i = 0; i < g.batch; i++)
      cblas_sgemv(CblasRowMajor, g.transB ? CblasNoTrans : CblasTrans, static_cast<blasint>(g.transB ? g.N : g.K),
                  static_cast<blasint>(g.transB ? g.K : g.N), alpha, b + i * g.strideB, ldb, a + i * g.strideA, 1, beta,
                  c + i * g.strideC, 1);
    return;
  }
  for (int64_t i = 0; i < g.batch; i++)
    cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans, g.transB ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(g.M), static_cast<blasint>(g.N), static_cast<blasint>(g.K), alpha,
                a + i * g.strideA, lda, b + i * g.strideB, ldb, beta, c + i * g.strideC, static_cast<blasint>(g.N));
}

// ---------------------------------------------------------------- bf16: oneDNN matmul

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Per thread (as is the primitive cache below), so the addon stays safe when loaded in several worker_threads.
dnnl::stream& cpuStream() {
  static thread_local dnnl::stream stream(cpuEngine());
  return stream;
}

// A [batch, rows, cols] matrix stored row-major, or as its transpose ([cols, rows]) when `transposed`, with
// `batchStride` elements between batch entries.
dnnl::memory::desc matrixDesc(dnnl::memory::data_type dt, int64_t batch, int64_t rows, int64_t cols,
                              int64_t batchStride, bool transposed) {
  if (batch == 1) batchStride = rows * cols;  // any value is valid for a size-1 axis; keep it plain
  return dnnl::memory::desc({batch, rows, cols}, dt,
                            {batchStride, transposed ? 1 : cols, transposed ? rows : 1});
}

// A matmul primitive with its descriptors; `scaled` says it takes alpha as a runtime output scale.
struct Matmul {
  dnnl::matmul prim;
  dnnl::memory::desc src, weights, dst;
  bool scaled;
};

// Creates the primitive for `g` (batch stride 0 → broadcast batch axis of size 1). Returns nothing when oneDNN
// has no optimised implementation for that layout (only its slow reference one), so the caller loops over the
// batch with 2-D primitives instead.
std::optional<Matmul> createMatmul(const Gemm& g, bool scaled, float beta) {
  using dt = dnnl::memory::data_type;
  auto src = matrixDesc(dt::bf16, g.strideA == 0 ? 1 : g.batch, g.M, g.K, g.strideA, g.transA);
  auto weights = matrixDesc(dt::bf16, g.strideB == 0 ? 1 : g.batch, g.K, g.N, g.strideB, g.transB);
  auto dst = matrixDesc(dt::f32, g.batch, g.M, g.N, g.strideC, false);
  dnnl::primitive_attr attr;
  if (scaled) attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
  if (beta != 0.f) {
    dnnl::post_ops ops;
    ops.append_sum(beta);  // dst = alpha·A·B + beta·dst
    attr.set_post_ops(ops);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst), attr, cpuEngine());
    if (g.batch > 1 && std::string(pd.impl_info_str()).find("ref") != std::string::npos) return std::nullopt;
    return Matmul{dnnl::matmul(pd), src, weights, dst, scaled};
  } catch (const dnnl::error&) {
    if (g.batch > 1) return std::nullopt;
    throw;
  }
}

// Primitives by everything that shapes them, so repeated shapes (every layer, every step) reuse them.
using MatmulKey = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, bool, float>;
constexpr size_t kMaxCachedMatmuls = 256;

const std::optional<Matmul>& cachedMatmul(const Gemm& g, bool scaled, float beta) {
  static thread_local std::map<MatmulKey, std::optional<Matmul>> cache;
  MatmulKey key{g.batch, g.M, g.N, g.K, g.transA, g.transB, g.strideA, g.strideB, g.strideC, scaled, beta};
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kMaxCachedMatmuls) cache.clear();
  return cache.emplace(key, createMatmul(g, scaled, beta)).first->second;
}

void execute(const Matmul& mm, const uint16_t* a, const uint16_t* b, float* c, float alpha) {
  dnnl::engine& engine = cpuEngine();
  dnnl::memory src(mm.src, engine, const_cast<uint16_t*>(a));
  dnnl::memory weights(mm.weights, engine, const_cast<uint16_t*>(b));
  dnnl::memory dst(mm.dst, engine, c);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (mm.scaled)
    args.emplace(DNNL_ARG_ATTR_OUTPUT_SCALES,
                 dnnl::memory({{1}, dnnl::memory::data_type::f32, {1}}, engine, &alpha));
  mm.prim.execute(cpuStream(), args);
  cpuStream().wait();
}

void bgemm(const Gemm& g, const uint16_t* a, const uint16_t* b, float* c, float alpha, float beta) {
  const bool scaled = alpha != 1.f;
  // A shared C (strideC 0) accumulates the batch entries one after another; oneDNN cannot express that.
  if (g.batch == 1 || g.strideC != 0) {
    if (const std::optional<Matmul>& mm = cachedMatmul(g, scaled, beta)) return execute(*mm, a, b, c, alpha);
  }
  const Matmul& one = *cachedMatmul(g.single(), scaled, beta);
  for (int64_t i = 0; i < g.batch; i++) execute(one, a + i * g.strideA, b + i * g.strideB, c + i * g.strideC, alpha);
}

// K = 0: the product is empty, so C = beta·C (beta = 0 overwrites, even NaN, as BLAS does).
void scaleOnly(const Gemm& g, float* c, float beta) {
  for (int64_t i = 0; i < g.batch; i++)
    for (int64_t j = 0; j < g.M * g.N; j++) c[i * g.strideC + j] = beta == 0.f ? 0.f : beta * c[i * g.strideC + j];
}

}  // namespace

PEFTJS_EXPORT(gemm) {
  Args a(info, "gemm");
  const double d = a.num(0);
  if (d != 0 && d != 1) a.fail("dtype must be GemmDType.F32 (0) or GemmDType.BF16 (1), got " + std::to_string(d));
  const GemmDType dtype = static_cast<GemmDType>(static_cast<int>(d));
  Gemm g{sizeArg(a, 4, "batch"), sizeArg(a, 5, "M"), sizeArg(a, 6, "N"), sizeArg(a, 7, "K"), a.flag(8), a.flag(9),
         sizeArg(a, 10, "strideA"), sizeArg(a, 11, "strideB"), sizeArg(a, 12, "strideC")};
  const float alpha = static_cast<float>(a.num(13)), beta = static_cast<float>(a.num(14));
  const void* pa = dtype == GemmDType::F32 ? static_cast<const void*>(a.f32(1)) : a.u16(1);
  const void* pb = dtype == GemmDType::F32 ? static_cast<const void*>(a.f32(2)) : a.u16(2);
  float* c = a.f32(3);
  if (g.M > INT32_MAX || g.N > INT32_MAX || g.K > INT32_MAX) a.fail("M, N and K must be below 2^31");
  if (g.batch == 0 || g.M == 0 || g.N == 0) return info.Env().Undefined();
  need(a, 1, "a", (g.batch - 1) * g.strideA + g.M * g.K);
  need(a, 2, "b", (g.batch - 1) * g.strideB + g.K * g.N);
  need(a, 3, "c", (g.batch - 1) * g.strideC + g.M * g.N);
  if (g.K == 0) {
    scaleOnly(g, c, beta);
  } else if (dtype == GemmDType::F32) {
    sgemm(g, static_cast<const float*>(pa), static_cast<const float*>(pb), c, alpha, beta);
  } else {
    try {
      bgemm(g, static_cast<const uint16_t*>(pa), static_cast<const uint16_t*>(pb), c, alpha, beta);
    } catch (const dnnl::error& e) {
      a.fail(std::string("oneDNN matmul failed: ") + e.what());
    }
  }
  return info.Env().Undefined();
}

// benchRawGemm(dtype, M, N, K, iters) → seconds for `iters` back-to-back C = A·B calls made straight to the
// library (cblas_sgemm, or one pre-built oneDNN matmul on pre-built memory objects) on random operands, after
// one untimed warm-up call. The baseline bench/gemm.ts compares the addon's `gemm` against.
PEFTJS_EXPORT(benchRawGemm) {
  Args a(info, "benchRawGemm");
  const double d = a.num(0);
  const int64_t M = sizeArg(a, 1, "M"), N = sizeArg(a, 2, "N"), K = sizeArg(a, 3, "K");
  const int64_t iters = sizeArg(a, 4, "iters");
  if (M == 0 || N == 0 || K == 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
    a.fail("M, N and K must be in [1, 2^31)");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> A(M * K), B(K * N), C(M * N);
  for (float& v : A) v = u(rng);
  for (float& v : B) v = u(rng);
  using clock = std::chrono::steady_clock;
  std::chrono::duration<double> elapsed{};
  if (d == 0) {
    auto run = [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
    };
    run();
    auto t0 = clock::now();
    for (int64_t i = 0; i < iters; i++) run();
    elapsed = clock::now() - t0;
  } else if (d == 1) {
    using dt = dnnl::memory::data_type;
    dnnl::engine& engine = cpuEngine();
    dnnl::memory::desc src({M, K}, dt::bf16, {K, 1}), weights({K, N}, dt::bf16, {N, 1}), dst({M, N}, dt::f32, {N, 1});
    dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), engine));
    std::vector<uint16_t> Ab(M * K), Bb(K * N);
    auto toBF16 = [](float f) {  // operands are random, so truncation is as good as rounding here
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      return static_cast<uint16_t>(bits >> 16);
    };
    for (int64_t i = 0; i < M * K; i++) Ab[i] = toBF16(A[i]);
    for (int64_t i = 0; i < K * N; i++) Bb[i] = toBF16(B[i]);
    dnnl::memory ms(src, engine, Ab.data()), mw(weights, engine, Bb.data()), md(dst, engine, C.data());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    auto run = [&] {
      prim.execute(cpuStream(), args);
      cpuStream().wait();
    };
    run();
    auto t0 = clock::now();
    for (int64_t i = 0; i < iters; i++) run();
    elapsed = clock::now() - t0;
  } else {
    a.fail("dtype must be 0 (f32) or 1 (bf16)");
  }
  return Napi::Number::New(info.Env(), elapsed.count());
}
