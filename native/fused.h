// Helpers shared by the fused kernel families (softmax, norm, rope, attention, embedding, loss, optim):
// argument size checks, the serial-below-this threshold, a vectorisable exp and a row log-sum-exp.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include "args.h"

namespace peftjs {

// Below this many elements of work a kernel runs on the calling thread (an OpenMP fork costs microseconds).
constexpr int64_t kParallelMin = 1 << 15;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A size argument: a non-negative integer.
inline int64_t sizeArg(const Args& a, size_t i, const char* name) {
  double v = a.num(i);
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0)
    a.fail(std::string(name) + " must be a non-negative integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

// Throws unless typed-array argument i (already type-checked) holds at least n elements.
inline void need(const Args& a, size_t i, const char* name, int64_t n) {
  int64_t have = static_cast<int64_t>(a.length(i));
  if (have < n)
    a.fail("argument " + std::to_string(i) + " (" + name + ") has " + std::to_string(have) + " elements, needs " +
           std::to_string(n));
}

// ---------------------------------------------------------------- 16-bit float conversions

inline uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16ToF32(uint16_t b) {
  return floatOf(static_cast<uint32_t>(b) << 16);
}

// Round to nearest even on the 16 bits dropped; a NaN keeps its sign and gets the quiet bit (so it stays NaN
// even when its payload lived only in the dropped bits).
inline uint16_t f32ToBF16(float f) {
  const uint32_t u = bitsOf(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x0040u;
  return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);  // select in 32 bits, narrow once
}

// IEEE half → f32, exactly: normals rebias the exponent (127 − 15 = 112), subnormals are mantissa · 2⁻²⁴
// (exact in f32), inf/NaN keep the payload.
inline float f16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7FFFu;
  const uint32_t sub = bitsOf(static_cast<float>(em) * 5.9604644775390625e-8f);
  uint32_t bits = em >= 0x7C00u ? 0x7F800000u | ((em & 0x3FFu) << 13) : em >= 0x0400u ? (em << 13) + (112u << 23) : sub;
  return floatOf(bits | sign);
}

// f32 → IEEE half, round to nearest even, branch-free so the loop vectorises. Normals: rebias the exponent and
// add the rounding bias (0xFFF plus the kept mantissa's lowest bit, so ties go to even); a carry into the
// exponent rounds up correctly, to inf at most. Below 2⁻¹⁴ the result is subnormal: adding 0.5f aligns the
// mantissa so the FPU's own round-to-nearest-even does the rounding. |x| ≥ 65536 and inf give inf; NaN gives a
// quiet NaN keeping the sign and the top 10 payload bits.
inline uint16_t f32ToF16(float x) {
  uint32_t f = bitsOf(x);
  const uint32_t sign = (f >> 16) & 0x8000u;
  f &= 0x7FFFFFFFu;
  const uint32_t big = f > 0x7F800000u ? 0x7E00u | ((f >> 13) & 0x3FFu) : 0x7C00u;
  const uint32_t sub = bitsOf(floatOf(f) + 0.5f) - 0x3F000000u;
  const uint32_t norm = (f + 0xC8000FFFu + ((f >> 13) & 1u)) >> 13;  // 0xC8000000 = (15 − 127) << 23
  const uint32_t h = f >= 0x47800000u ? big : f < 0x38800000u ? sub : norm;
  return static_cast<uint16_t>(h | sign);
}

// exp(x) without a libm call, so loops that use it vectorise: exp(x) = 2^n · exp(r), n = round(x / ln2),
// r = x − n·ln2 (Cody–Waite split), |r| ≤ ln2/2, exp(r) by its degree-6 Taylor polynomial (rel. error ≈ 1.2e-7).
// Returns 0 below −87.3 (so exp(−inf) = 0), +inf above 88.7, and propagates NaN.
inline float expFast(float x) {
  float xc = x < -87.3f ? -87.3f : (x > 88.37f ? 88.37f : x);
  float n = (xc * 1.44269504f + 12582912.f) - 12582912.f;  // round to nearest by the 1.5·2^23 trick
  float r = xc - n * 0.693145751953125f - n * 1.428606765330187e-06f;
  float p = 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  float y = p * scale;
  y = x < -87.3f ? 0.f : y;
  y = x > 88.7f ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;
}

// log Σ_j exp(x[j]) over one row, shifted by the row max for stability; −inf for an all −inf row (or n = 0).
inline float logSumExp(const float* x, int64_t n) {
  float mx = kNegInf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
  if (mx == kNegInf) return kNegInf;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) sum += expFast(x[j] - mx);
  return mx + std::log(sum);
}

}  // namespace peftjs
