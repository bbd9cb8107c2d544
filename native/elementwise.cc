// Element-wise kernels: broadcasting binary ops, unary activations and their derivatives, SwiGLU, where, dropout.
#include <cmath>
#include "fused.h"
#include "loops.h"
#include "registry.h"

using namespace peftjs;

namespace {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Exp, Log, Silu, GeluTanh, GeluErf, Tanh, Relu, Sigmoid, Sqrt, Square, Neg };

// Reads an enum argument, checking it names one of `count` values.
template <typename E>
E opArg(const Args& a, size_t i, int count) {
  double v = a.num(i);
  if (!(v >= 0 && v < count && v == std::floor(v))) a.fail("unknown op " + std::to_string(v));
  return static_cast<E>(static_cast<int>(v));
}

inline float sigmoid(float x) { return 1.f / (1.f + expFast(-x)); }

// GELU (tanh form): 0.5·x·(1 + tanh(u)) = x·σ(2u) with u = √(2/π)·(x + 0.044715·x³).
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;
inline float geluTanhGate(float x) { return sigmoid(2.f * kGeluC * (x + kGeluA * x * x * x)); }

// Φ(x) = (1 + erf(x/√2))/2, written with erfc so that it keeps its relative accuracy in the left tail
// (1 + erf cancels there: f32 GELU(−5) would be off by 10%).
inline float normalCdf(float x) { return 0.5f * std::erfc(x * -0.70710678118654752f); }

// out[i] = f(x[i]), with the op chosen outside the loop so each loop body is branch-free and vectorisable.
template <typename F>
void map(const float* x, float* out, int64_t n, F f) {
  parallelFor(n, [=](int64_t i) { out[i] = f(x[i]); });
}

void unaryLoop(UnaryOp op, const float* x, float* out, int64_t n) {
  switch (op) {
    case UnaryOp::Exp: return map(x, out, n, [](float v) { return expFast(v); });
    case UnaryOp::Log: return map(x, out, n, [](float v) { return std::log(v); });
    case UnaryOp::Silu: return map(x, out, n, [](float v) { return v * sigmoid(v); });
    case UnaryOp::GeluTanh: return map(x, out, n, [](float v) { return v * geluTanhGate(v); });
    case UnaryOp::GeluErf: return map(x, out, n, [](float v) { return v * normalCdf(v); });
    case UnaryOp::Tanh: return map(x, out, n, [](float v) { return std::tanh(v); });
    case UnaryOp::Relu: return map(x, out, n, [](float v) { return v < 0.f ? 0.f : v; });  // NaN stays NaN
    case UnaryOp::Sigmoid: return map(x, out, n, [](float v) { return sigmoid(v); });
    case UnaryOp::Sqrt: return map(x, out, n, [](float v) { return std::sqrt(v); });
    case UnaryOp::Square: return map(x, out, n, [](float v) { return v * v; });
    case UnaryOp::Neg: return map(x, out, n, [](float v) { return -v; });
  }
}

// gx[i] = gy[i] · d(x[i], y[i]) where d is f'(x) written with whichever of x and y = f(x) is cheaper.
template <typename D>
void mapBackward(const float* x, const float* y, const float* gy, float* gx, int64_t n, D d) {
  parallelFor(n, [=](int64_t i) { gx[i] = gy[i] * d(x[i], y[i]); });
}

inline float siluGrad(float x) {
  float s = sigmoid(x);
  return s * (1.f + x * (1.f - s));
}

void unaryBackwardLoop(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n) {
  switch (op) {
    case UnaryOp::Exp: return mapBackward(x, y, gy, gx, n, [](float, float v) { return v; });
    case UnaryOp::Log: return mapBackward(x, y, gy, gx, n, [](float u, float) { return 1.f / u; });
    case UnaryOp::Silu: return mapBackward(x, y, gy, gx, n, [](float u, float) { return siluGrad(u); });
    case UnaryOp::GeluTanh:
      // d/dx x·σ(2u) = σ(2u) + x·σ(2u)·(1 − σ(2u))·2u',  u' = √(2/π)·(1 + 3·0.044715·x²)
      return mapBackward(x, y, gy, gx, n, [](float u, float) {
        float s = geluTanhGate(u);
        return s + u * s * (1.f - s) * 2.f * kGeluC * (1.f + 3.f * kGeluA * u * u);
      });
    case UnaryOp::GeluErf:
      // d/dx 0.5·x·(1 + erf(x/√2)) = Φ(x) + x·φ(x)
      return mapBackward(x, y, gy, gx, n, [](float u, float) {
        return normalCdf(u) + u * 0.3989422804014327f * expFast(-0.5f * u * u);
      });
    case UnaryOp::Tanh: return mapBackward(x, y, gy, gx, n, [](float, float v) { return 1.f - v * v; });
    case UnaryOp::Relu: return mapBackward(x, y, gy, gx, n, [](float u, float) { return u > 0.f ? 1.f : 0.f; });
    case UnaryOp::Sigmoid: return mapBackward(x, y, gy, gx, n, [](float, float v) { return v * (1.f - v); });
    case UnaryOp::Sqrt: return mapBackward(x, y, gy, gx, n, [](float, float v) { return 0.5f / v; });
    case UnaryOp::Square: return mapBackward(x, y, gy, gx, n, [](float u, float) { return 2.f * u; });
    case UnaryOp::Neg: return mapBackward(x, y, gy, gx, n, [](float, float) { return -1.f; });
  }
}

// The ops whose derivative reads y = f(x) (the others never touch y).
bool backwardReadsY(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid || op == UnaryOp::Sqrt;
}

// out[idx] = f(a[aStrides·idx], b[bStrides·idx]), with fast paths for same-layout runs and for one operand
// broadcast along the run (a row vector or a scalar).
template <typename F>
void binaryLoop(const Strided<3>& s, const float* a, const float* b, float* out, F f) {
  forEachRun(s, [=](const int64_t* off, int64_t n, const int64_t* st) {
    const float* x = a + off[0];
    const float* y = b + off[1];
    float* o = out + off[2];  // out is contiguous, so its runs have stride 1
    const int64_t sa = st[0], sb = st[1];
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i], y[i]);
    } else if (sa == 1 && sb == 0) {
      const float v = *y;
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i], v);
    } else if (sa == 0 && sb == 1) {
      const float v = *x;
      for (int64_t i = 0; i < n; i++) o[i] = f(v, y[i]);
    } else {
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i * sa], y[i * sb]);
    }
  });
}

// dropout's counter-based uniform: identical bit for bit to hashUniform in kernels.ts (murmur3 fmix32 of
// seed ⊕ i·0x9E3779B1, top 24 bits / 2²⁴).
inline float hashUniform(uint32_t seed, uint32_t i) {
  uint32_t h = seed ^ (i * 0x9E3779B1u);
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return static_cast<float>(h >> 8) * (1.f / 16777216.f);
}

// JavaScript's ToUint32 (what `seed ^ …` does to a number): truncate, then wrap modulo 2³².
uint32_t toUint32(double v) {
  if (!std::isfinite(v)) return 0;
  double m = std::fmod(std::trunc(v), 4294967296.0);
  return static_cast<uint32_t>(m < 0 ? m + 4294967296.0 : m);
}

}  // namespace

PEFTJS_EXPORT(binary) {
  Args a(info, "binary");
  BinaryOp op = opArg<BinaryOp>(a, 0, 4);
  const float* x = a.f32(1);
  const float* y = a.f32(3);
  float* out = a.f32(5);
  const Operand ops[3] = {{1, 2, "a"}, {3, 4, "b"}, {5, -1, "out"}};
  Strided<3> s = readStrided(a, 6, ops);
  switch (op) {
    case BinaryOp::Add: binaryLoop(s, x, y, out, [](float u, float v) { return u + v; }); break;
    case BinaryOp::Sub: binaryLoop(s, x, y, out, [](float u, float v) { return u - v; }); break;
    case BinaryOp::Mul: binaryLoop(s, x, y, out, [](float u, float v) { return u * v; }); break;
    case BinaryOp::Div: binaryLoop(s, x, y, out, [](float u, float v) { return u / v; }); break;
  }
  return info.Env().Undefined();
}

PEFTJS_EXPORT(unary) {
  Args a(info, "unary");
  UnaryOp op = opArg<UnaryOp>(a, 0, 11);
  const float* x = a.f32(1);
  float* out = a.f32(2);
  int64_t n = sizeArg(a, 3, "n");
  need(a, 1, "x", n);
  need(a, 2, "out", n);
  unaryLoop(op, x, out, n);
  return info.Env().Undefined();
}

PEFTJS_EXPORT(unaryBackward) {
  Args a(info, "unaryBackward");
  UnaryOp op = opArg<UnaryOp>(a, 0, 11);
  const float* x = a.f32(1);
  const float* y = a.f32(2);
  const float* gy = a.f32(3);
  float* gx = a.f32(4);
  int64_t n = sizeArg(a, 5, "n");
  need(a, 1, "x", n);
  if (backwardReadsY(op)) need(a, 2, "y", n);
  need(a, 3, "gy", n);
  need(a, 4, "gx", n);
  unaryBackwardLoop(op, x, y, gy, gx, n);
  return info.Env().Undefined();
}

PEFTJS_EXPORT(swiglu) {
  Args a(info, "swiglu");
  const float* g = a.f32(0);
  const float* u = a.f32(1);
  float* out = a.f32(2);
  int64_t n = sizeArg(a, 3, "n");
  need(a, 0, "g", n);
  need(a, 1, "u", n);
  need(a, 2, "out", n);
  parallelFor(n, [=](int64_t i) { out[i] = g[i] * sigmoid(g[i]) * u[i]; });
  return info.Env().Undefined();
}

PEFTJS_EXPORT(swigluBackward) {
  Args a(info, "swigluBackward");
  const float* g = a.f32(0);
  const float* u = a.f32(1);
  const float* gy = a.f32(2);
  float* gg = a.f32(3);
  float* gu = a.f32(4);
  int64_t n = sizeArg(a, 5, "n");
  need(a, 0, "g", n);
  need(a, 1, "u", n);
  need(a, 2, "gy", n);
  need(a, 3, "gg", n);
  need(a, 4, "gu", n);
  parallelFor(n, [=](int64_t i) {
    const float gi = g[i], ui = u[i], gyi = gy[i];
    gg[i] = gyi * ui * siluGrad(gi);
    gu[i] = gyi * gi * sigmoid(gi);
  });
  return info.Env().Undefined();
}

PEFTJS_EXPORT(where) {
  Args a(info, "where");
  const uint8_t* mask = a.u8(0);
  const float* x = a.f32(2);
  const float* y = a.f32(4);
  float* out = a.f32(6);
  const Operand ops[4] = {{0, 1, "mask"}, {2, 3, "a"}, {4, 5, "b"}, {6, -1, "out"}};
  Strided<4> s = readStrided(a, 7, ops);
  forEachRun(s, [=](const int64_t* off, int64_t n, const int64_t* st) {
    const uint8_t* m = mask + off[0];
    const float* xa = x + off[1];
    const float* yb = y + off[2];
    float* o = out + off[3];
    const int64_t sm = st[0], sa = st[1], sb = st[2];
    if (sm == 1 && sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? xa[i] : yb[i];
    } else if (sm == 1 && sa == 0 && sb == 0) {  // masked_fill-style: two scalars chosen by a mask
      const float va = *xa, vb = *yb;
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? va : vb;
    } else if (sm == 1 && sa == 1 && sb == 0) {
      const float vb = *yb;
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? xa[i] : vb;
    } else if (sm == 1 && sa == 0 && sb == 1) {
      const float va = *xa;
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? va : yb[i];
    } else {
      for (int64_t i = 0; i < n; i++) o[i] = m[i * sm] ? xa[i * sa] : yb[i * sb];
    }
  });
  return info.Env().Undefined();
}

PEFTJS_EXPORT(dropout) {
  Args a(info, "dropout");
  const float* x = a.f32(0);
  float* out = a.f32(1);
  uint8_t* mask = a.u8(2);
  int64_t n = sizeArg(a, 3, "n");
  const double p = a.num(4);
  const uint32_t seed = toUint32(a.num(5));
  if (!(p >= 0 && p <= 1)) a.fail("p must be in [0, 1], got " + std::to_string(p));
  need(a, 0, "x", n);
  need(a, 1, "out", n);
  need(a, 2, "mask", n);
  // In double, as JavaScript computes it: the keep test against p (not p rounded to f32) and x·1/(1 − p).
  const double scale = 1.0 / (1.0 - p);
  parallelFor(n, [=](int64_t i) {
    const bool keep = static_cast<double>(hashUniform(seed, static_cast<uint32_t>(i))) >= p;
    mask[i] = keep;
    out[i] = keep ? static_cast<float>(x[i] * scale) : 0.f;
  });
  return info.Env().Undefined();
}
