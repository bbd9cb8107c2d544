// Thread count shared by every kernel: OpenMP (our element-wise loops and oneDNN, which runs on libgomp) and
// OpenBLAS's own pthread pool. Defaults to OpenMP's default (the number of cores, or OMP_NUM_THREADS).
#include <cblas.h>
#include <omp.h>
#include "fused.h"
#include "registry.h"

namespace {

void applyThreads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

// Runs when the addon loads, so OpenBLAS starts with the same count as OpenMP.
const bool kThreadsInitialised = (applyThreads(omp_get_max_threads()), true);

}  // namespace

PEFTJS_EXPORT(setNumThreads) {
  peftjs::Args a(info, "setNumThreads");
  int64_t n = peftjs::sizeArg(a, 0, "n");
  if (n < 1 || n > 1024) a.fail("n must be between 1 and 1024, got " + std::to_string(n));
  applyThreads(static_cast<int>(n));
  return info.Env().Undefined();
}

PEFTJS_EXPORT(getNumThreads) {
  (void)kThreadsInitialised;
  return Napi::Number::New(info.Env(), omp_get_max_threads());
}
