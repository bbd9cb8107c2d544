// Argument access for kernel entry points: typed-array data pointers, numbers, flags and stride lists.
// Every accessor checks its argument and throws a JS TypeError naming the kernel and the argument index.
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include <vector>

namespace peftjs {

// Where a typed array's elements start, over an ArrayBuffer or a SharedArrayBuffer alike (Napi::TypedArray::ArrayBuffer
// rejects a SharedArrayBuffer; a merge writes its output ranges straight into the shared slots of its write-behind).
inline void* typedArrayData(const Napi::TypedArray& t) {
  void* data = nullptr;
  NAPI_THROW_IF_FAILED(t.Env(), napi_get_typedarray_info(t.Env(), t, nullptr, nullptr, &data, nullptr, nullptr), nullptr);
  return data;
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel) : info_(info), kernel_(kernel) {}

  // Float32Array → float*
  float* f32(size_t i) const { return data<float>(i, napi_float32_array, "Float32Array"); }
  // Float32Array or null → float* (nullptr)
  float* f32OrNull(size_t i) const { return isNull(i) ? nullptr : f32(i); }
  // Uint16Array (bf16 or f16 bits) → uint16_t*
  uint16_t* u16(size_t i) const { return data<uint16_t>(i, napi_uint16_array, "Uint16Array"); }
  int32_t* i32(size_t i) const { return data<int32_t>(i, napi_int32_array, "Int32Array"); }
  double* f64(size_t i) const { return data<double>(i, napi_float64_array, "Float64Array"); }
  uint8_t* u8(size_t i) const { return data<uint8_t>(i, napi_uint8_array, "Uint8Array"); }
  uint8_t* u8OrNull(size_t i) const { return isNull(i) ? nullptr : u8(i); }
  // Any typed array → raw bytes plus element size (for dtype-agnostic kernels such as copyStrided).
  void* raw(size_t i, size_t* elemBytes, size_t* length = nullptr) const {
    auto v = info_[i];
    if (!v.IsTypedArray()) fail(i, "a typed array");
    auto t = v.As<Napi::TypedArray>();
    *elemBytes = t.ElementSize();
    if (length) *length = t.ElementLength();
    return typedArrayData(t);
  }
  size_t length(size_t i) const { return info_[i].As<Napi::TypedArray>().ElementLength(); }
  double num(size_t i) const {
    if (!info_[i].IsNumber()) fail(i, "a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  int64_t int64(size_t i) const { return static_cast<int64_t>(num(i)); }
  bool flag(size_t i) const {
    if (!info_[i].IsBoolean()) fail(i, "a boolean");
    return info_[i].As<Napi::Boolean>().Value();
  }
  // number[] → vector<int64_t>
  std::vector<int64_t> ints(size_t i) const {
    if (!info_[i].IsArray()) fail(i, "an array of numbers");
    auto a = info_[i].As<Napi::Array>();
    std::vector<int64_t> out(a.Length());
    for (uint32_t k = 0; k < a.Length(); k++) out[k] = static_cast<int64_t>(a.Get(k).As<Napi::Number>().DoubleValue());
    return out;
  }
  // A handle from `maker` (see handleOf: an external value tagged with `tag`) → the object it holds
  template <typename T>
  T& handle(size_t i, const napi_type_tag& tag, const char* maker) const {
    auto v = info_[i];
    if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&tag)) fail(i, (std::string("a handle from ") + maker).c_str());
    return *v.As<Napi::External<T>>().Data();
  }
  bool isNull(size_t i) const { return info_[i].IsNull() || info_[i].IsUndefined(); }
  Napi::Env env() const { return info_.Env(); }
  const Napi::CallbackInfo& info() const { return info_; }
  [[noreturn]] void fail(const std::string& msg) const {
    throw Napi::Error::New(info_.Env(), std::string(kernel_) + ": " + msg);
  }

 private:
  template <typename T>
  T* data(size_t i, napi_typedarray_type type, const char* what) const {
    auto v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) fail(i, what);
    auto t = v.As<Napi::TypedArray>();
    return static_cast<T*>(typedArrayData(t));
  }
  [[noreturn]] void fail(size_t i, const char* what) const {
    throw Napi::TypeError::New(info_.Env(), std::string(kernel_) + ": argument " + std::to_string(i) + " must be " + what);
  }
  const Napi::CallbackInfo& info_;
  const char* kernel_;
};

// A handle for JS that owns `object` (deleted when the handle is garbage-collected), tagged with `tag` so that
// Args::handle takes no other external value for one.
template <typename T>
Napi::External<T> handleOf(Napi::Env env, T* object, const napi_type_tag& tag) {
  auto h = Napi::External<T>::New(env, object, [](Napi::Env, T* o) { delete o; });
  h.TypeTag(&tag);
  return h;
}

}  // namespace peftjs
