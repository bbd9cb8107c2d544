// Data movement: strided copies, dtype casts, fill, affine and axpy.
#include <cstring>
#include "fused.h"
#include "loops.h"
#include "registry.h"

using namespace peftjs;

namespace {

// dst[dstStrides·idx] = src[srcStrides·idx] for elements of type T (only the size matters: bits are copied).
template <typename T>
void copyRuns(const Strided<2>& s, const void* src, void* dst) {
  const T* x = static_cast<const T*>(src);
  T* y = static_cast<T*>(dst);
  forEachRun(s, [&](const int64_t* off, int64_t n, const int64_t* st) {
    const T* xs = x + off[0];
    T* ys = y + off[1];
    if (st[0] == 1 && st[1] == 1) {
      std::memcpy(ys, xs, n * sizeof(T));
    } else {
      const int64_t sx = st[0], sy = st[1];
      for (int64_t i = 0; i < n; i++) ys[i * sy] = xs[i * sx];
    }
  });
}

}  // namespace

PEFTJS_EXPORT(copyStrided) {
  Args a(info, "copyStrided");
  size_t srcBytes, dstBytes;
  const void* src = a.raw(0, &srcBytes);
  void* dst = a.raw(2, &dstBytes);
  if (srcBytes != dstBytes)
    a.fail("src has " + std::to_string(srcBytes) + "-byte elements but dst has " + std::to_string(dstBytes));
  const Operand ops[2] = {{0, 1, "src"}, {2, 3, "dst"}};
  Strided<2> s = readStrided(a, 4, ops);
  switch (srcBytes) {
    case 1: copyRuns<uint8_t>(s, src, dst); break;
    case 2: copyRuns<uint16_t>(s, src, dst); break;
    case 4: copyRuns<uint32_t>(s, src, dst); break;
    case 8: copyRuns<uint64_t>(s, src, dst); break;
    default: a.fail("unsupported element size " + std::to_string(srcBytes));
  }
  return info.Env().Undefined();
}

PEFTJS_EXPORT(castF32ToBF16) {
  Args a(info, "castF32ToBF16");
  return castKernel<f32ToBF16>(a, a.f32(0), a.u16(1));
}

PEFTJS_EXPORT(castBF16ToF32) {
  Args a(info, "castBF16ToF32");
  return castKernel<bf16ToF32>(a, a.u16(0), a.f32(1));
}

PEFTJS_EXPORT(castF16ToF32) {
  Args a(info, "castF16ToF32");
  return castKernel<f16ToF32>(a, a.u16(0), a.f32(1));
}

PEFTJS_EXPORT(fill) {
  Args a(info, "fill");
  float* dst = a.f32(0);
  int64_t n = sizeArg(a, 1, "n");
  const float value = static_cast<float>(a.num(2));
  need(a, 0, "dst", n);
  parallelFor(n, [=](int64_t i) { dst[i] = value; });
  return info.Env().Undefined();
}

PEFTJS_EXPORT(affine) {
  Args a(info, "affine");
  const float* x = a.f32(0);
  float* out = a.f32(1);
  int64_t n = sizeArg(a, 2, "n");
  const float alpha = static_cast<float>(a.num(3)), beta = static_cast<float>(a.num(4));
  need(a, 0, "x", n);
  need(a, 1, "out", n);
  parallelFor(n, [=](int64_t i) { out[i] = alpha * x[i] + beta; });
  return info.Env().Undefined();
}

PEFTJS_EXPORT(axpy) {
  Args a(info, "axpy");
  const float* x = a.f32(0);
  float* y = a.f32(1);
  int64_t n = sizeArg(a, 2, "n");
  const float alpha = static_cast<float>(a.num(3));
  need(a, 0, "x", n);
  need(a, 1, "y", n);
  parallelFor(n, [=](int64_t i) { y[i] += alpha * x[i]; });
  return info.Env().Undefined();
}
