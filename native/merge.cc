// Merging: the hot loops of model merging — f32 → f16 casts, weighted sums (written in the output dtype), magnitude
// histograms, samples, brackets and rank lookups (TIES / Breadcrumbs trimming by rank) over task vectors read straight from
// two checkpoints' ranges, bands, and the fused TIES trim + sign election + disjoint mean over k task vectors.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include "fused.h"
#include "loops.h"
#include "registry.h"

using namespace peftjs;

namespace {

// The dtypes the merge kernels read and write (CastDType in kernels.ts).
enum CastDType { kF32 = 0, kBF16 = 1, kF16 = 2 };

// Fails unless `dtype` is one of CastDType's (kernels.ts).
void checkDType(const Args& a, const std::string& name, int64_t dtype) {
  if (dtype != kF32 && dtype != kBF16 && dtype != kF16) a.fail(name + " dtype must be 0 (F32), 1 (BF16) or 2 (F16), got " + std::to_string(dtype));
}

// Calls f with `data` as the element type of a checked `dtype` and its converter to f32.
template <typename F>
void withConverter(int64_t dtype, const void* data, F f) {
  switch (dtype) {
    case kF32: return f(static_cast<const float*>(data), [](float v) { return v; });
    case kBF16: return f(static_cast<const uint16_t*>(data), [](uint16_t v) { return bf16ToF32(v); });
    default: return f(static_cast<const uint16_t*>(data), [](uint16_t v) { return f16ToF32(v); });
  }
}

// A range of a checkpoint tensor as the merge kernels read it: its dtype (CastDType) and its data.
struct Typed {
  int64_t dtype;
  const void* data;
};

// Arguments `dtypesArg` (an Int32Array) and `listArg` (an array of typed arrays) as operands, each checked to be the
// typed array of its dtype with at least n entries.
std::vector<Typed> operands(const Args& a, size_t dtypesArg, size_t listArg, int64_t n) {
  const Napi::CallbackInfo& info = a.info();
  if (!info[listArg].IsArray()) a.fail("argument " + std::to_string(listArg) + " must be an array of typed arrays");
  const Napi::Array list = info[listArg].As<Napi::Array>();
  const int32_t* dtypes = a.i32(dtypesArg);
  std::vector<Typed> out(list.Length());
  need(a, dtypesArg, "dtypes", static_cast<int64_t>(out.size()));
  for (uint32_t j = 0; j < out.size(); j++) {
    const Napi::Value v = list.Get(j);
    checkDType(a, "input " + std::to_string(j), dtypes[j]);
    const napi_typedarray_type want = dtypes[j] == kF32 ? napi_float32_array : napi_uint16_array;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want || v.As<Napi::TypedArray>().ElementLength() < static_cast<size_t>(n))
      a.fail("input " + std::to_string(j) + " must be a " + (dtypes[j] == kF32 ? "Float32Array" : "Uint16Array") + " of at least " + std::to_string(n) + " entries");
    const Napi::TypedArray t = v.As<Napi::TypedArray>();
    out[j] = {dtypes[j], typedArrayData(t)};
  }
  return out;
}

// dst[0, m) = entries [i0, i0 + m) of x in f32.
void load(const Typed& x, int64_t i0, int32_t m, float* dst) {
  withConverter(x.dtype, x.data, [&](auto p, auto cvt) {
    p += i0;
#pragma omp simd
    for (int32_t i = 0; i < m; i++) dst[i] = cvt(p[i]);
  });
}

// A vector the selection kernels read: x, or x − base subtracted in f32 (a task vector straight from the ranges of
// two checkpoints), tile by tile.
struct Vector {
  Typed x, base;
  bool difference;
  // dst[0, m) = entries [i0, i0 + m) of the vector, in one pass.
  void tile(int64_t i0, int32_t m, float* dst) const {
    if (!difference) return load(x, i0, m, dst);
    withConverter(x.dtype, x.data, [&](auto p, auto cvt) {
      withConverter(base.dtype, base.data, [&](auto q, auto cvtBase) {
        p += i0, q += i0;
#pragma omp simd
        for (int32_t i = 0; i < m; i++) dst[i] = cvt(p[i]) - cvtBase(q[i]);
      });
    });
  }
};

// Arguments `dtypesArg` and `listArg` as a Vector of n entries: one operand (x) or two (x, base).
Vector vectorArg(const Args& a, size_t dtypesArg, size_t listArg, int64_t n) {
  const std::vector<Typed> ops = operands(a, dtypesArg, listArg, n);
  if (ops.size() != 1 && ops.size() != 2) a.fail("a vector is one input (x) or two (x, base), got " + std::to_string(ops.size()));
  return {ops[0], ops.back(), ops.size() == 2};
}

// Magnitude bits (the f32 bits with the sign cleared, which order like |v|) of a tile.
inline const uint32_t* bitsOf(const float* v) { return reinterpret_cast<const uint32_t*>(v); }

// Per-thread histograms over contiguous index ranges of x, summed into `hist` (which accumulates). Magnitudes
// cluster, so consecutive entries often hit the same bin, and one histogram would chain every increment on the
// previous one's store; entry i goes to sub-histogram i mod 4 instead. Entries whose magnitude bits b have
// b >> matchShift ≠ match are skipped.
void histogram(const Vector& x, int64_t n, int32_t* hist, int64_t bins, int64_t shift, int64_t matchShift, int64_t match) {
  const uint32_t mask = static_cast<uint32_t>(bins - 1);
  const int threads = n >= kParallelMin ? omp_get_max_threads() : 1;
  constexpr int kWays = 4;
  constexpr int32_t kTile = 1024;
  std::vector<int32_t> local(static_cast<size_t>(threads) * kWays * bins, 0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int32_t* h = local.data() + static_cast<size_t>(t) * kWays * bins;
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    float v[kTile];
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
      const int32_t m = static_cast<int32_t>(std::min<int64_t>(kTile, end - i0));
      x.tile(i0, m, v);
      const uint32_t* u = bitsOf(v);
      for (int32_t i = 0; i < m; i++) {
        const int64_t b = u[i] & 0x7FFFFFFFu;
        if ((b >> matchShift) == match) h[(i & (kWays - 1)) * bins + ((b >> shift) & mask)]++;
      }
    }
  }
  for (int64_t t = 0; t < threads * kWays; t++)
    for (int64_t j = 0; j < bins; j++) hist[j] += local[static_cast<size_t>(t) * bins + j];
}

#if !defined(__AVX512F__) && defined(__AVX2__)
// For each 8-bit mask, the indices of its set bits in order, then zeros.
struct CompressTable {
  uint8_t lanes[256][8];
  constexpr CompressTable() : lanes{} {
    for (int mask = 0; mask < 256; mask++)
      for (int bit = 0, at = 0; bit < 8; bit++)
        if (mask >> bit & 1) lanes[mask][at++] = static_cast<uint8_t>(bit);
  }
};
constexpr CompressTable kCompress;
#endif

// Writes the magnitude bits b of u[0, m) with lo < b < hi to dst (room for m) in order; returns how many. Branch-free:
// a branch per entry mispredicts at every inside entry and cost 3× the vectorised count it follows.
inline int32_t collectInside(const uint32_t* u, int32_t m, uint32_t lo, uint32_t hi, int32_t* dst) {
  int32_t got = 0, i = 0;
#if defined(__AVX512F__)
  const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF), l = _mm512_set1_epi32(static_cast<int32_t>(lo)), h = _mm512_set1_epi32(static_cast<int32_t>(hi));
  for (; i + 16 <= m; i += 16) {
    const __m512i b = _mm512_and_si512(_mm512_loadu_si512(u + i), abs);
    const __mmask16 inside = _mm512_cmpgt_epu32_mask(b, l) & _mm512_cmplt_epu32_mask(b, h);
    _mm512_mask_compressstoreu_epi32(dst + got, inside, b);
    got += __builtin_popcount(inside);
  }
#elif defined(__AVX2__)
  // AVX2 has no compressing store: a permutation per 8-lane mask (kCompress) moves the inside lanes to the front.
  const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF), l = _mm256_set1_epi32(static_cast<int32_t>(lo)), h = _mm256_set1_epi32(static_cast<int32_t>(hi));
  for (; i + 8 <= m; i += 8) {
    const __m256i b = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + i)), abs);
    // Magnitude bits are < 2³¹, so the signed compares order them as unsigned ones would.
    const __m256i inside = _mm256_and_si256(_mm256_cmpgt_epi32(b, l), _mm256_cmpgt_epi32(h, b));
    const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(inside));
    const __m256i order = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(kCompress.lanes[mask])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + got), _mm256_permutevar8x32_epi32(b, order));
    got += __builtin_popcount(mask);
  }
#endif
  for (; i < m; i++) {
    const uint32_t b = u[i] & 0x7FFFFFFFu;
    dst[got] = static_cast<int32_t>(b);
    got += (b > lo) & (b < hi);
  }
  return got;
}

// A thread's list of entries found by a bracket pass. It keeps its memory from call to call and grows without
// zero-filling: a fresh std::vector per call, resized per tile, cost as much as the count itself.
struct FoundList {
  std::unique_ptr<int32_t[]> data;
  int64_t size = 0, capacity = 0;
  // Room for `more` entries after the first `size`.
  int32_t* room(int64_t more) {
    if (size + more > capacity) {
      capacity = std::max(2 * capacity, size + more);
      std::unique_ptr<int32_t[]> grown(new int32_t[capacity]);
      std::copy(data.get(), data.get() + size, grown.get());
      data = std::move(grown);
    }
    return data.get() + size;
  }
};
// Per bracket of a call, on each thread.
thread_local std::vector<FoundList> tFound;

void checkBins(const Args& a, int64_t bins, int64_t shift) {
  if (bins == 0 || bins > (1 << 16) || (bins & (bins - 1)) != 0) a.fail("bins must be a power of two ≤ 65536, got " + std::to_string(bins));
  if (shift > 31) a.fail("shift must be ≤ 31, got " + std::to_string(shift));
}

// A row's magnitude band in the form the tile loop tests without branches: entry i of a tile (at = tile start + i)
// is kept when (b > low or b = low and i ≥ lowFrom) and (b < high or b = high and i < highTo). Disabled boundaries
// become ones that keep everything (low 0 from 0, high 2³¹−1 up to the tile's end) and an empty band one that keeps
// nothing (low 2³¹−1 from past the end).
struct RowBand {
  int32_t low, high;
  int64_t lowCut, highCut;
};

RowBand rowBand(const double* b) {
  const double low = b[0], lowCut = b[1], high = b[2], highCut = b[3];
  constexpr int64_t kAll = INT64_MAX / 2, kTop = 0x7FFFFFFF;
  RowBand r;
  if (low < 0) r.low = 0, r.lowCut = -kAll;
  else if (low > kTop) r.low = kTop, r.lowCut = kAll;
  else r.low = static_cast<int32_t>(low), r.lowCut = static_cast<int64_t>(lowCut);
  if (high > kTop) r.high = kTop, r.highCut = kAll;
  else r.high = static_cast<int32_t>(high), r.highCut = static_cast<int64_t>(highCut);
  return r;
}

// Magnitude bits from ≤ b ≤ to as one unsigned compare: b is kept when b − lo ≤ span (mod 2³²). An empty range
// (from > to) becomes lo = 2³¹ with span 0, which no magnitude (< 2³¹) passes.
struct MagnitudeRange {
  uint32_t lo, span;
  MagnitudeRange(int64_t from, int64_t to)
      : lo(from > to ? 0x80000000u : static_cast<uint32_t>(from)), span(from > to ? 0u : static_cast<uint32_t>(to - from)) {}
  bool keeps(uint32_t b) const { return b - lo <= span; }
};

// out[i] = value(i) for i < m, written as `dtype`: one vectorised pass that computes and stores.
template <typename F>
void storeWith(int64_t dtype, void* out, int32_t m, F value) {
  float* f = static_cast<float*>(out);
  uint16_t* o = static_cast<uint16_t*>(out);
  switch (dtype) {
    case kF32:
#pragma omp simd
      for (int32_t i = 0; i < m; i++) f[i] = value(i);
      return;
    case kBF16:
#pragma omp simd
      for (int32_t i = 0; i < m; i++) o[i] = f32ToBF16(value(i));
      return;
    case kF16:
#pragma omp simd
      for (int32_t i = 0; i < m; i++) o[i] = f32ToF16(value(i));
      return;
  }
}

// An output argument: its data and the size of its elements in its dtype.
struct Output {
  void* data;
  size_t size;
};

// Argument `arg` as an output of n entries of `dtype` (checked): a Float32Array for F32, a Uint16Array otherwise.
Output outputArg(const Args& a, size_t arg, int64_t dtype, int64_t n) {
  checkDType(a, "out", dtype);
  void* data = dtype == kF32 ? static_cast<void*>(a.f32(arg)) : a.u16(arg);
  need(a, arg, "out", n);
  return {data, dtype == kF32 ? sizeof(float) : sizeof(uint16_t)};
}

// How TIES elects each entry's sign (SignElection in kernels.ts): none (every row agrees), by Σ vⱼ, or by Σ sign vⱼ.
enum Election { kNone = 0, kSum = 1, kCount = 2 };

// A zero tile: τⱼ = row − zeros when the rows are task vectors already (x − 0 = x for every float, −0 and NaN too).
constexpr int32_t kTiesTile = 512;
const float kZeros[kTiesTile] = {};

// The disjoint mean of an entry: as mergekit, divided by the agreeing weights' sum when it is not 0 (without an
// election, when |Σ wⱼ| ≥ 1e-8), then scaled by λ and added to the base.
template <int kElection>
inline float disjointMean(float base, float acc, float agree, float lambda, bool normalize) {
  const bool divide = kElection == kNone ? std::fabs(agree) >= 1e-8f : agree != 0;
  return base + lambda * acc / (normalize && divide ? agree : 1.f);
}

// f(j) for the compile-time constants j = 0, 1, …, K − 1, as straight-line code (so a loop around it vectorises).
template <typename F, size_t... J>
inline void unrolledAt(F&& f, std::index_sequence<J...>) {
  (f(std::integral_constant<int, J>{}), ...);
}
template <int K, typename F>
inline void unrolled(F&& f) {
  unrolledAt(f, std::make_index_sequence<K>{});
}

// The most task vectors the one-pass tile (tiesTile) takes; more go through the passes of tiesTiles.
constexpr int kTiesFusedMax = 4;

// One tile of K task vectors whose inputs share the type T (converted by cvt), none with a band boundary's index cut
// inside the tile: trim, vote, agreeing sums and the disjoint mean in one vectorised pass that keeps every row's
// value in registers (half the instructions of the passes of tiesTiles, which store and reload them). res[i] gets
// entry i in f32.
template <int kElection, int K, typename T, typename Cvt>
void tiesTile(const T* const* rows, Cvt cvt, bool models, const float* weights, const MagnitudeRange* bands, int32_t m, float lambda, bool normalize,
              float* res) {
  // Local copies, so the loop reads them from registers and not through pointers it cannot prove unchanged.
  const T* p[K + 1];
  float w[K];
  uint32_t lo[K], span[K];
  for (int j = 0; j <= K; j++) p[j] = rows[j];
  for (int j = 0; j < K; j++) w[j] = weights[j], lo[j] = bands[j].lo, span[j] = bands[j].span;
  // τⱼ subtracts the base, or +0 (x − +0 = x for every float), through a bit mask: a select on `models` in the loop
  // kept GCC from vectorising it.
  const uint32_t keepBase = models ? 0xFFFFFFFFu : 0u;
#pragma omp simd
  for (int32_t i = 0; i < m; i++) {
    const float base = cvt(p[0][i]), subtract = floatOf(peftjs::bitsOf(base) & keepBase);
    float v[K], vote = 0;
    unrolled<K>([&](auto j) {
      const float x = cvt(p[j + 1][i]) - subtract;
      v[j] = (peftjs::bitsOf(x) & 0x7FFFFFFFu) - lo[j] <= span[j] ? w[j] * x : 0.f;  // MagnitudeRange::keeps
      vote += kElection == kCount ? static_cast<float>(v[j] > 0) - static_cast<float>(v[j] < 0) : v[j];
    });
    float acc = 0, agree = 0;
    unrolled<K>([&](auto j) {
      const bool agrees = kElection == kNone || (vote >= 0 ? v[j] : -v[j]) > 0;  // zeros never agree
      acc += agrees ? v[j] : 0.f;
      agree += agrees ? w[j] : 0.f;
    });
    res[i] = disjointMean<kElection>(base, acc, agree, lambda, normalize);
  }
}

// tiesTile for k task vectors (1 ≤ k ≤ kTiesFusedMax) read from in[0] (the base) and in[1..k], all of dtype `dtype`,
// at entry i0.
template <int kElection>
void tiesTileOf(const std::vector<Typed>& in, int64_t dtype, int64_t i0, bool models, const float* w, const MagnitudeRange* band, int32_t m, float lambda,
                bool normalize, float* res) {
  withConverter(dtype, in[0].data, [&](auto p0, auto cvt) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(p0)>>;
    const T* p[kTiesFusedMax + 1];
    for (size_t j = 0; j < in.size(); j++) p[j] = static_cast<const T*>(in[j].data) + i0;
    switch (in.size() - 1) {
      case 1: return tiesTile<kElection, 1>(p, cvt, models, w, band, m, lambda, normalize, res);
      case 2: return tiesTile<kElection, 2>(p, cvt, models, w, band, m, lambda, normalize, res);
      case 3: return tiesTile<kElection, 3>(p, cvt, models, w, band, m, lambda, normalize, res);
      default: return tiesTile<kElection, 4>(p, cvt, models, w, band, m, lambda, normalize, res);
    }
  });
}

// Tiles of entries. A tile where no band boundary's index cut falls, of at most kTiesFusedMax task vectors whose
// inputs share a dtype, goes through tiesTile in one pass; any other in 2k + 3 passes over tiles that stay in L1, each
// a contiguous, branch-free loop that vectorises: the base in f32; zeroed sums; per row, τⱼ (the row, or the row minus
// the base) trimmed to its band and weighted, and the vote; per row, the agreeing sums; and the disjoint mean written
// straight in the output dtype. (Each pass costs about as much as the arithmetic it holds, so the passes are few.)
template <int kElection>
void tiesTiles(const std::vector<Typed>& in, bool models, int64_t n, const float* w, const RowBand* bands, int64_t offset, int64_t outDtype,
               Output out, float lambda, bool normalize) {
  constexpr int32_t kTile = kTiesTile;
  const int64_t k = static_cast<int64_t>(in.size()) - 1, tiles = (n + kTile - 1) / kTile;
  const bool fusable = k >= 1 && k <= kTiesFusedMax && std::all_of(in.begin(), in.end(), [&](const Typed& x) { return x.dtype == in[0].dtype; });
#pragma omp parallel if (n >= kParallelMin)
  {
    std::vector<float> masked(static_cast<size_t>(k) * kTile);
    std::vector<MagnitudeRange> ranges(static_cast<size_t>(k), MagnitudeRange(0, 0));
#pragma omp for schedule(dynamic, 64)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t i0 = t * kTile;
      const int32_t m = static_cast<int32_t>(std::min<int64_t>(kTile, n - i0));
      void* const tileOut = static_cast<uint8_t*>(out.data) + i0 * out.size;
      // Where row j's band boundaries cut the tile by index: a cut strictly inside needs the per-entry predicate.
      const auto lowFrom = [&](int64_t j) { return static_cast<int32_t>(std::clamp<int64_t>(bands[j].lowCut - offset - i0, 0, m)); };
      const auto highTo = [&](int64_t j) { return static_cast<int32_t>(std::clamp<int64_t>(bands[j].highCut - offset - i0, 0, m)); };
      const auto cutInside = [&](int64_t j) {
        const int32_t lo = lowFrom(j), hi = highTo(j);
        return (lo > 0 && lo < m) || (hi > 0 && hi < m);
      };
      // Without a cut inside, the band is one range of magnitudes for every entry of the tile.
      const auto range = [&](int64_t j) {
        return MagnitudeRange(static_cast<int64_t>(bands[j].low) + (lowFrom(j) == m), static_cast<int64_t>(bands[j].high) - (highTo(j) == 0));
      };
      bool cut = false;
      for (int64_t j = 0; j < k; j++) cut = cut || cutInside(j);
      if (fusable && !cut) {
        float res[kTile];
        for (int64_t j = 0; j < k; j++) ranges[j] = range(j);
        tiesTileOf<kElection>(in, in[0].dtype, i0, models, w, ranges.data(), m, lambda, normalize, res);
        storeWith(outDtype, tileOut, m, [&](int32_t i) { return res[i]; });
        continue;
      }
      float base[kTile];
      load(in[0], i0, m, base);
      const float* subtract = models ? base : kZeros;
      float vote[kTile];
#pragma omp simd
      for (int32_t i = 0; i < m; i++) vote[i] = 0;
      for (int64_t j = 0; j < k; j++) {
        float* vj = masked.data() + j * kTile;
        const float wj = w[j];
        // τⱼ trimmed to its band by keep(b, i) (b: entry i's magnitude bits), weighted, and its vote.
        const auto trim = [&](auto keep) {
          withConverter(in[j + 1].dtype, in[j + 1].data, [&](auto p, auto cvt) {
            p += i0;
#pragma omp simd
            for (int32_t i = 0; i < m; i++) {
              const float x = cvt(p[i]) - subtract[i];
              uint32_t b;
              std::memcpy(&b, &x, 4);
              const float v = keep(b & 0x7FFFFFFFu, i) ? wj * x : 0.f;
              vj[i] = v;
              vote[i] += kElection == kCount ? static_cast<float>(v > 0) - static_cast<float>(v < 0) : v;
            }
          });
        };
        if (cutInside(j)) {
          const int32_t low = bands[j].low, high = bands[j].high, lo = lowFrom(j), hi = highTo(j);
          trim([=](uint32_t u, int32_t i) {
            const int32_t b = static_cast<int32_t>(u);
            return ((b > low) | ((b == low) & (i >= lo))) & ((b < high) | ((b == high) & (i < hi)));
          });
        } else {
          const MagnitudeRange band = range(j);
          trim([=](uint32_t b, int32_t) { return band.keeps(b); });
        }
      }
      float acc[kTile], agree[kTile];
#pragma omp simd
      for (int32_t i = 0; i < m; i++) acc[i] = agree[i] = 0;
      for (int64_t j = 0; j < k; j++) {
        const float* vj = masked.data() + j * kTile;
        const float wj = w[j];
#pragma omp simd
        for (int32_t i = 0; i < m; i++) {
          const float v = vj[i];
          const float s = vote[i] >= 0 ? v : -v;  // v times the elected sign; zeros never agree
          const bool agrees = kElection == kNone || s > 0;
          acc[i] += agrees ? v : 0.f;
          agree[i] += agrees ? wj : 0.f;
        }
      }
      storeWith(outDtype, tileOut, m, [&](int32_t i) { return disjointMean<kElection>(base[i], acc[i], agree[i], lambda, normalize); });
    }
  }
}

}  // namespace

PEFTJS_EXPORT(castF32ToF16) {
  Args a(info, "castF32ToF16");
  return castKernel<f32ToF16>(a, a.f32(0), a.u16(1));
}

PEFTJS_EXPORT(magnitudeHistogram) {
  Args a(info, "magnitudeHistogram");
  const int64_t n = sizeArg(a, 2, "n");
  const Vector x = vectorArg(a, 0, 1, n);
  int32_t* hist = a.i32(3);
  const int64_t bins = sizeArg(a, 4, "bins"), shift = sizeArg(a, 5, "shift"), matchShift = sizeArg(a, 6, "matchShift");
  const int64_t match = sizeArg(a, 7, "match");
  checkBins(a, bins, std::max(shift, matchShift));
  need(a, 3, "hist", bins);
  histogram(x, n, hist, bins, shift, matchShift, match);
  return info.Env().Undefined();
}

// Tiles of entries, each read once for every bracket: the base in f32 (with `based`), then each row's vector (the row,
// or the row minus the base) and, for each bracket on that row, a vectorised count of the four classes and, in a tile
// holding entries inside the bracket, a pass that collects them (per thread and bracket, appended to the bracket's
// list after the loop). A bracket holds a few percent of the entries, so most tiles of 256 hold some.
PEFTJS_EXPORT(magnitudeBrackets) {
  Args a(info, "magnitudeBrackets");
  const int64_t n = sizeArg(a, 2, "n");
  const std::vector<Typed> in = operands(a, 0, 1, n);
  const bool based = a.flag(3);
  const int64_t rowCount = static_cast<int64_t>(in.size()) - (based ? 1 : 0);
  const int32_t* rows = a.i32(4);
  const int64_t brackets = static_cast<int64_t>(a.length(4));
  const double* bounds = a.f64(5);
  need(a, 5, "bounds", 2 * brackets);
  double* counts = a.f64(7);
  need(a, 7, "counts", 4 * brackets);
  if (!info[6].IsArray() || info[6].As<Napi::Array>().Length() != brackets) a.fail("lists must be an array of one Int32Array per bracket");
  struct Bracket {
    uint32_t lo, hi;
    int32_t* list;
    int64_t capacity;
  };
  std::vector<Bracket> bs(static_cast<size_t>(brackets));
  std::vector<std::vector<int64_t>> onRow(static_cast<size_t>(std::max<int64_t>(rowCount, 0)));
  for (int64_t b = 0; b < brackets; b++) {
    if (rows[b] < 0 || rows[b] >= rowCount) a.fail("rows[" + std::to_string(b) + "] = " + std::to_string(rows[b]) + " names no row of " + std::to_string(rowCount));
    const double lo = bounds[2 * b], hi = bounds[2 * b + 1];
    if (!(lo >= 0 && lo <= hi && hi <= 0x7FFFFFFF)) a.fail("bracket " + std::to_string(b) + ": need 0 ≤ lo ≤ hi < 2³¹");
    const Napi::Value list = info[6].As<Napi::Array>().Get(static_cast<uint32_t>(b));
    if (!list.IsTypedArray() || list.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) a.fail("lists[" + std::to_string(b) + "] must be an Int32Array");
    const Napi::TypedArray t = list.As<Napi::TypedArray>();
    bs[b] = {static_cast<uint32_t>(lo), static_cast<uint32_t>(hi), static_cast<int32_t*>(typedArrayData(t)),
             static_cast<int64_t>(t.ElementLength())};
    onRow[rows[b]].push_back(b);
  }
  const int threads = n >= kParallelMin ? omp_get_max_threads() : 1;
  constexpr int32_t kTile = 256;
  std::vector<int64_t> total(static_cast<size_t>(4 * brackets), 0);
#pragma omp parallel num_threads(threads)
  {
    std::vector<FoundList>& found = tFound;
    if (found.size() < bs.size()) found.resize(bs.size());
    for (FoundList& f : found) f.size = 0;
    std::vector<int64_t> local(total.size(), 0);
    float base[kTile], v[kTile];
#pragma omp for schedule(dynamic, 64) nowait
    for (int64_t t = 0; t < (n + kTile - 1) / kTile; t++) {
      const int64_t i0 = t * kTile;
      const int32_t m = static_cast<int32_t>(std::min<int64_t>(kTile, n - i0));
      if (based) load(in[0], i0, m, base);
      for (int64_t r = 0; r < rowCount; r++) {
        if (onRow[r].empty()) continue;
        const Typed& x = in[r + (based ? 1 : 0)];
        withConverter(x.dtype, x.data, [&](auto p, auto cvt) {
          p += i0;
#pragma omp simd
          for (int32_t i = 0; i < m; i++) v[i] = based ? cvt(p[i]) - base[i] : cvt(p[i]);
        });
        const uint32_t* u = bitsOf(v);
        for (const int64_t b : onRow[r]) {
          const uint32_t lo = bs[b].lo, hi = bs[b].hi;
          // 32-bit counts within a tile vectorise 8 lanes wide (64-bit ones 4).
          int32_t cb = 0, ce = 0, ci = 0, ct = 0;
#pragma omp simd reduction(+ : cb, ce, ci, ct)
          for (int32_t i = 0; i < m; i++) {
            const uint32_t q = u[i] & 0x7FFFFFFFu;
            cb += q < lo;
            ce += q == lo;
            ci += (q > lo) & (q < hi);
            ct += (q == hi) & (hi != lo);
          }
          int64_t* c = local.data() + 4 * b;
          c[0] += cb, c[1] += ce, c[2] += ci, c[3] += ct;
          if (ci > 0) found[b].size += collectInside(u, m, lo, hi, found[b].room(m));
        }
      }
    }
#pragma omp critical
    for (int64_t b = 0; b < brackets; b++) {
      const int64_t filled = static_cast<int64_t>(counts[4 * b + 2]) + total[4 * b + 2];
      const int64_t take = std::max<int64_t>(0, std::min<int64_t>(found[b].size, bs[b].capacity - filled));
      std::copy(found[b].data.get(), found[b].data.get() + take, bs[b].list + filled);
      for (int k = 0; k < 4; k++) total[4 * b + k] += local[4 * b + k];
    }
  }
  for (int64_t j = 0; j < 4 * brackets; j++) counts[j] += static_cast<double>(total[j]);
  return info.Env().Undefined();
}

// The sample that brackets a rank, a few entries spread over the vector: parallel over the entries, so the page faults
// of a freshly mapped range are taken on every core.
PEFTJS_EXPORT(magnitudeGather) {
  Args a(info, "magnitudeGather");
  const int64_t n = sizeArg(a, 2, "n");
  const Vector x = vectorArg(a, 0, 1, n);
  const int32_t* at = a.i32(3);
  const int64_t count = sizeArg(a, 4, "count");
  int32_t* out = a.i32(5);
  need(a, 3, "at", count);
  need(a, 5, "out", count);
  for (int64_t j = 0; j < count; j++)
    if (at[j] < 0 || at[j] >= n) a.fail("at[" + std::to_string(j) + "] = " + std::to_string(at[j]) + " lies outside [0, " + std::to_string(n) + ")");
#pragma omp parallel for schedule(static) if (count >= 256)
  for (int64_t j = 0; j < count; j++) {
    float v;
    x.tile(at[j], 1, &v);
    out[j] = static_cast<int32_t>(*bitsOf(&v) & 0x7FFFFFFFu);
  }
  return info.Env().Undefined();
}

// Counts the entries equal to `bits` tile by tile (a vectorised count), stopping in the tile that holds the wanted
// one, on one thread.
PEFTJS_EXPORT(magnitudeRankIndex) {
  Args a(info, "magnitudeRankIndex");
  const int64_t n = sizeArg(a, 2, "n");
  const Vector x = vectorArg(a, 0, 1, n);
  const int64_t bits = static_cast<int64_t>(a.num(3)), rank = sizeArg(a, 4, "rank");
  if (bits < 0 || bits > 0x7FFFFFFF) return Napi::Number::New(info.Env(), -1);  // no magnitude has these bits
  const uint32_t want = static_cast<uint32_t>(bits);
  constexpr int32_t kTile = 4096;
  float v[kTile];
  const uint32_t* u = bitsOf(v);
  int64_t seen = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int32_t m = static_cast<int32_t>(std::min<int64_t>(kTile, n - i0));
    x.tile(i0, m, v);
    int32_t c = 0;
#pragma omp simd reduction(+ : c)
    for (int32_t i = 0; i < m; i++) c += (u[i] & 0x7FFFFFFFu) == want;
    if (seen + c <= rank) {
      seen += c;
      continue;
    }
    for (int32_t i = 0;; i++)
      if ((u[i] & 0x7FFFFFFFu) == want && seen++ == rank) return Napi::Number::New(info.Env(), static_cast<double>(i0 + i));
  }
  return Napi::Number::New(info.Env(), static_cast<double>(-1 - seen));
}

// Between the cuts the predicate is the same for every entry: keep lo ≤ b ≤ hi, one unsigned compare. So the chunk is
// split at the cuts (at most three segments), each a vectorised, parallel loop.
PEFTJS_EXPORT(keepMagnitudeBand) {
  Args a(info, "keepMagnitudeBand");
  uint32_t* x = reinterpret_cast<uint32_t*>(a.f32(0));
  int64_t n = sizeArg(a, 1, "n");
  const int64_t offset = sizeArg(a, 2, "offset");
  const int64_t low = static_cast<int64_t>(a.num(3)), lowCut = static_cast<int64_t>(a.num(4));
  const int64_t high = static_cast<int64_t>(a.num(5)), highCut = static_cast<int64_t>(a.num(6));
  need(a, 0, "x", n);
  auto local = [&](int64_t cut) { return std::clamp<int64_t>(cut - offset, 0, n); };
  int64_t cuts[4] = {0, local(lowCut), local(highCut), n};
  std::sort(cuts + 1, cuts + 3);
  for (int s = 0; s < 3; s++) {
    const int64_t begin = cuts[s], end = cuts[s + 1], at = offset + begin;
    if (begin == end) continue;
    // Entries equal to low are dropped before lowCut; those equal to high from highCut on.
    const MagnitudeRange band(std::max<int64_t>(0, low + (at < lowCut)), std::min<int64_t>(0x7FFFFFFF, high - (at >= highCut)));
    uint32_t* y = x + begin;
    parallelFor(end - begin, [=](int64_t i) { y[i] = band.keeps(y[i] & 0x7FFFFFFFu) ? y[i] : 0u; });
  }
  return info.Env().Undefined();
}

PEFTJS_EXPORT(tiesCombine) {
  Args a(info, "tiesCombine");
  const int64_t n = sizeArg(a, 2, "n");
  const std::vector<Typed> in = operands(a, 0, 1, n);
  const int64_t k = static_cast<int64_t>(in.size()) - 1;
  if (k < 0) a.fail("no base");
  const float* w = a.f32(3);
  const double* bandArgs = a.f64(4);
  const int64_t offset = sizeArg(a, 5, "offset"), outDtype = a.int64(6);
  const float lambda = static_cast<float>(a.num(8));
  const bool normalize = a.flag(9);
  const int64_t election = a.int64(10);
  const bool models = a.flag(11);
  need(a, 3, "w", k);
  const bool banded = a.length(4) > 0;
  if (banded) need(a, 4, "bands", 4 * k);
  const Output out = outputArg(a, 7, outDtype, n);
  std::vector<RowBand> bands(static_cast<size_t>(k));
  const double all[4] = {-1, 0, 2147483648.0, 0};
  for (int64_t j = 0; j < k; j++) bands[j] = rowBand(banded ? bandArgs + 4 * j : all);
  switch (election) {
    case kNone: tiesTiles<kNone>(in, models, n, w, bands.data(), offset, outDtype, out, lambda, normalize); break;
    case kSum: tiesTiles<kSum>(in, models, n, w, bands.data(), offset, outDtype, out, lambda, normalize); break;
    case kCount: tiesTiles<kCount>(in, models, n, w, bands.data(), offset, outDtype, out, lambda, normalize); break;
    default: a.fail("election must be 0 (none), 1 (sum) or 2 (count), got " + std::to_string(election));
  }
  return info.Env().Undefined();
}

// Tiles of entries: each input's weighted term goes into an f32 tile that stays in L1 (the first assigned, the others
// added as axpy adds them, so a streamed linear merge equals the whole-tensor one bit for bit), then the tile is cast
// to the output dtype: one pass over the inputs, none over an f32 copy of the sum.
PEFTJS_EXPORT(weightedSum) {
  Args a(info, "weightedSum");
  const int64_t n = sizeArg(a, 3, "n"), outDtype = a.int64(4);
  const std::vector<Typed> xs = operands(a, 0, 1, n);
  const int64_t k = static_cast<int64_t>(xs.size());
  const float* w = a.f32(2);
  if (k == 0) a.fail("no inputs");
  need(a, 2, "w", k);
  const Output out = outputArg(a, 5, outDtype, n);
  constexpr int32_t kTile = 1024;
  const int64_t tiles = (n + kTile - 1) / kTile;
#pragma omp parallel for schedule(dynamic, 64) if (n >= kParallelMin)
  for (int64_t t = 0; t < tiles; t++) {
    const int64_t i0 = t * kTile;
    const int32_t m = static_cast<int32_t>(std::min<int64_t>(kTile, n - i0));
    float acc[kTile];
    for (int64_t j = 0; j < k; j++) {
      const float wj = w[j];
      withConverter(xs[j].dtype, xs[j].data, [&](auto x, auto cvt) {
        x += i0;
        if (j == 0) {
#pragma omp simd
          for (int32_t i = 0; i < m; i++) acc[i] = wj * cvt(x[i]);
        } else {
#pragma omp simd
          for (int32_t i = 0; i < m; i++) acc[i] += wj * cvt(x[i]);
        }
      });
    }
    storeWith(outDtype, static_cast<uint8_t*>(out.data) + i0 * out.size, m, [&](int32_t i) { return acc[i]; });
  }
  return info.Env().Undefined();
}
