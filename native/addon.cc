// The addon's entry point: exports every function registered by the kernel families (see registry.h).
#include "registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (const auto& r : peftjs::registry()) exports.Set(r.name, Napi::Function::New(env, r.fn, r.name));
  return exports;
}

NODE_API_MODULE(peftjs, Init)
