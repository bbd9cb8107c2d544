// Batched row-major GEMM with fp32 accumulation: f32 through OpenBLAS cblas_sgemm (or, with a dimension ≤ 64, the
// register-tiled loops of tiles.h), bf16 through oneDNN matmul (bf16 source and weights, f32 destination). Transposes and batch strides are expressed as leading dimensions /
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
#include <vector>
#include "fused.h"
#include "loops.h"
#include "registry.h"
#include "tiles.h"

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

// ---------------------------------------------------------------- a thin output: own loops
// LoRA's products have one dimension of size r: x·Aᵀ and g·B (N = r), uᵀ·x (M = r), gᵀ·t (N = r, long K). With two
// threads, OpenBLAS runs the f32 ones with N or M ≤ 16 at 0.4–0.6x of its own one-thread speed, and oneDNN's bf16
// matmul takes milliseconds when M and N are both small and K long (64×8×2048: 1.6 ms against 0.06 ms here). The
// register-tiled loops of tiles.h, which stream the large operand once with the small one in registers, take
// those; the rank-r updates (K = r) stay with the libraries, which are faster there. P is op(B) as row-major
// [K, N]: B itself, or packed when B is stored transposed (one of K, N is small, so the copy is too).

constexpr int64_t kThinF32 = 16;              // f32: M or N up to this
constexpr int64_t kThinBF16 = 64;             // bf16: M and N both up to this
constexpr int64_t kSkinnyParallel = 1 << 18;  // multiply-adds below which the path stays on the calling thread

#if defined(PEFTJS_TILES_AVX512)
// Whether the f32 product goes to the tiles (M = 1 is a matrix-vector product: sgemv).
bool skinnyF32(const Gemm& g) { return g.M > 1 && std::min(g.M, g.N) <= kThinF32; }
// Whether the bf16 product does.
bool skinnyBF16(const Gemm& g) { return g.M > 1 && std::max(g.M, g.N) <= kThinBF16; }

// One batch entry of a skinny product (T = float or bf16 bits), its tiles in parallel.
template <typename T>
void skinnyProduct(const Gemm& g, const T* a, const T* b, float* c, float alpha, float beta) {
  const T* p = b;
  if (g.transB) {  // pack op(B) = Bᵀ as [K, N]; B is stored [N, K]
    static thread_local std::vector<T> packed;
    packed.resize(g.K * g.N);
    for (int64_t n = 0; n < g.N; n++)
      for (int64_t k = 0; k < g.K; k++) packed[k * g.N + n] = b[n * g.K + k];
    p = packed.data();
  }
  const TileProduct<T> t{a, g.transA ? 1 : g.K, g.transA ? g.M : 1, p, g.N, c, g.N, g.M, g.N, g.K, alpha, beta};
  withTiling(g.N, [&](auto tiling) {
    const int64_t n = tiling.count(t);
#pragma omp parallel for schedule(static) if (g.M * g.N * g.K >= kSkinnyParallel)
    for (int64_t i = 0; i < n; i++) tiling.run(t, i);
  });
}

// Every batch entry of a skinny product.
template <typename T>
void skinnyGemm(const Gemm& g, const T* a, const T* b, float* c, float alpha, float beta) {
  for (int64_t i = 0; i < g.batch; i++)
    skinnyProduct(g.single(), a + i * g.strideA, b + i * g.strideB, c + i * g.strideC, alpha, beta);
}
#else
bool skinnyF32(const Gemm&) { return false; }
bool skinnyBF16(const Gemm&) { return false; }
template <typename T>
void skinnyGemm(const Gemm&, const T*, const T*, float*, float, float) {}
#endif

// ---------------------------------------------------------------- f32: OpenBLAS

void sgemm(const Gemm& g, const float* a, const float* b, float* c, float alpha, float beta) {
  if (skinnyF32(g)) return skinnyGemm(g, a, b, c, alpha, beta);
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

// Whether oneDNN has a bf16 matmul on this CPU: it needs AVX-512 (BF16 or plain, emulated) or AMX; on an AVX2-only
// CPU no primitive can be created. Probed once with a 2×2 product.
bool hasBF16Matmul() {
  static const bool has = [] {
    try {
      createMatmul(Gemm{1, 2, 2, 2, false, false, 4, 4, 4}, false, 0.f);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return has;
}

// bf16 operands widened to f32 (exactly) for sgemm: the fallback where oneDNN has no bf16 matmul.
void widenedGemm(const Gemm& g, const uint16_t* a, const uint16_t* b, float* c, float alpha, float beta) {
  const int64_t na = (g.batch - 1) * g.strideA + g.M * g.K, nb = (g.batch - 1) * g.strideB + g.K * g.N;
  std::vector<float> fa(na), fb(nb);
  float* pa = fa.data();
  float* pb = fb.data();
  parallelFor(na, [=](int64_t i) { pa[i] = bf16ToF32(a[i]); });
  parallelFor(nb, [=](int64_t i) { pb[i] = bf16ToF32(b[i]); });
  sgemm(g, pa, pb, c, alpha, beta);
}

void bgemm(const Gemm& g, const uint16_t* a, const uint16_t* b, float* c, float alpha, float beta) {
  if (skinnyBF16(g)) return skinnyGemm(g, a, b, c, alpha, beta);
  if (!hasBF16Matmul()) return widenedGemm(g, a, b, c, alpha, beta);
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
// one untimed warm-up call. The baseline bench/gemm.ts compares the addon's `gemm` against. Where oneDNN has no
// bf16 matmul (an AVX2-only CPU), bf16 times cblas_sgemm, the library call `gemm` makes there (see widenedGemm).
PEFTJS_EXPORT(benchRawGemm) {
  Args a(info, "benchRawGemm");
  const double d = a.num(0);
  if (d != 0 && d != 1) a.fail("dtype must be 0 (f32) or 1 (bf16)");
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
  if (d == 0 || !hasBF16Matmul()) {
    auto run = [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
    };
    run();
    auto t0 = clock::now();
    for (int64_t i = 0; i < iters; i++) run();
    elapsed = clock::now() - t0;
  } else {
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
  }
  return Napi::Number::New(info.Env(), elapsed.count());
}
