// Every kernel family registers its N-API functions here at static-initialisation time, so adding a
// family is one new .cc file (binding.gyp compiles every native/*.cc) and nothing else.
#pragma once
#include <napi.h>
#include <functional>
#include <string>
#include <vector>

namespace peftjs {

using Method = Napi::Value (*)(const Napi::CallbackInfo&);

struct Registration {
  const char* name;
  Method fn;
};

inline std::vector<Registration>& registry() {
  static std::vector<Registration> r;
  return r;
}

struct Register {
  Register(const char* name, Method fn) { registry().push_back({name, fn}); }
};

}  // namespace peftjs

// PEFTJS_EXPORT(name) { ... } defines `Napi::Value name(const Napi::CallbackInfo& info)` and exports it as `name`.
#define PEFTJS_EXPORT(name)                                                   \
  static Napi::Value name(const Napi::CallbackInfo& info);                   \
  static ::peftjs::Register register_##name(#name, name);                     \
  static Napi::Value name(const Napi::CallbackInfo& info)
