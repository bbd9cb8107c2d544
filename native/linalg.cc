// Dense linear algebra from OpenBLAS's LAPACK: the thin SVD (sgesdd, divide and conquer) and the solution of a
// square linear system (dgetrf + dgetrs, LU with partial pivoting, in double precision). Used by merging: SVD
// re-factorisation of adapter deltas and RegMean's closed form. The reference twin is
// src/engine/backend/reference/linalg.ts.
//
// LAPACK is column-major; our matrices are row-major. A row-major [m, n] buffer read column-major is Aᵀ [n, m].
// SVD: Aᵀ = U'·S·V'ᵀ means A = V'·S·U'ᵀ, and the column-major buffers LAPACK writes for U' ([n, k]) and V'ᵀ
// ([k, m]) are exactly the row-major buffers of our Vt ([k, n]) and U ([m, k]) — so no transposes are needed.
#include <algorithm>
#include <string>
#include <vector>
#include "fused.h"
#include "registry.h"

using namespace peftjs;

extern "C" {
void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s, float* u, const int* ldu,
             float* vt, const int* ldvt, float* work, const int* lwork, int* iwork, int* info);
void dgetrf_(const int* m, const int* n, double* a, const int* lda, int* ipiv, int* info);
void dgetrs_(const char* trans, const int* n, const int* nrhs, const double* a, const int* lda, const int* ipiv,
             double* b, const int* ldb, int* info);
}

namespace {

int lapackInt(const Args& a, int64_t v, const char* name) {
  if (v > 2147483647) a.fail(std::string(name) + " = " + std::to_string(v) + " exceeds LAPACK's 32-bit sizes");
  return static_cast<int>(v);
}

}  // namespace

// svd(a, m, n, u, s, vt): thin SVD of row-major a [m, n] = u [m, k] · diag(s [k]) · vt [k, n], k = min(m, n),
// s descending and non-negative. `a` is not modified.
PEFTJS_EXPORT(svd) {
  Args a(info, "svd");
  const float* src = a.f32(0);
  const int64_t m64 = sizeArg(a, 1, "m"), n64 = sizeArg(a, 2, "n");
  float* u = a.f32(3);
  float* s = a.f32(4);
  float* vt = a.f32(5);
  const int64_t k64 = std::min(m64, n64);
  need(a, 0, "a", m64 * n64);
  need(a, 3, "u", m64 * k64);
  need(a, 4, "s", k64);
  need(a, 5, "vt", k64 * n64);
  if (k64 == 0) return info.Env().Undefined();
  // LAPACK sees the column-major [n, m] matrix Aᵀ.
  const int M = lapackInt(a, n64, "n"), N = lapackInt(a, m64, "m"), K = static_cast<int>(k64);
  std::vector<float> work_a(src, src + m64 * n64);
  std::vector<int> iwork(8 * static_cast<size_t>(K));
  const char jobz = 'S';
  int lwork = -1, status = 0;
  float query = 0;
  sgesdd_(&jobz, &M, &N, work_a.data(), &M, s, vt, &M, u, &K, &query, &lwork, iwork.data(), &status);
  if (status != 0) a.fail("sgesdd workspace query failed (info " + std::to_string(status) + ")");
  lwork = static_cast<int>(query) + 1;
  std::vector<float> work(static_cast<size_t>(lwork));
  sgesdd_(&jobz, &M, &N, work_a.data(), &M, s, vt, &M, u, &K, work.data(), &lwork, iwork.data(), &status);
  if (status < 0) a.fail("sgesdd: illegal argument " + std::to_string(-status));
  if (status > 0) a.fail("sgesdd did not converge on the [" + std::to_string(m64) + ", " + std::to_string(n64) + "] matrix (NaN or inf in it?)");
  return info.Env().Undefined();
}

// solve(a, b, n, nrhs, x): x [n, nrhs] = a⁻¹ · b for row-major a [n, n] and b [n, nrhs], by LU with partial
// pivoting in double precision. Throws when a is singular.
PEFTJS_EXPORT(solve) {
  Args a(info, "solve");
  const float* A = a.f32(0);
  const float* B = a.f32(1);
  const int64_t n64 = sizeArg(a, 2, "n"), r64 = sizeArg(a, 3, "nrhs");
  float* X = a.f32(4);
  need(a, 0, "a", n64 * n64);
  need(a, 1, "b", n64 * r64);
  need(a, 4, "x", n64 * r64);
  if (n64 == 0 || r64 == 0) return info.Env().Undefined();
  const int n = lapackInt(a, n64, "n"), nrhs = lapackInt(a, r64, "nrhs");
  // The row-major a read column-major is aᵀ: factor aᵀ and solve with trans = 'T'. b goes in column-major.
  std::vector<double> lu(A, A + n64 * n64);
  std::vector<double> rhs(static_cast<size_t>(n64 * r64));
  for (int64_t i = 0; i < n64; i++)
    for (int64_t j = 0; j < r64; j++) rhs[j * n64 + i] = B[i * r64 + j];
  std::vector<int> ipiv(static_cast<size_t>(n));
  int status = 0;
  dgetrf_(&n, &n, lu.data(), &n, ipiv.data(), &status);
  if (status > 0) a.fail("the [" + std::to_string(n) + ", " + std::to_string(n) + "] matrix is singular (zero pivot at " + std::to_string(status) + ")");
  if (status < 0) a.fail("dgetrf: illegal argument " + std::to_string(-status));
  const char trans = 'T';
  dgetrs_(&trans, &n, &nrhs, lu.data(), &n, ipiv.data(), rhs.data(), &n, &status);
  if (status != 0) a.fail("dgetrs: illegal argument " + std::to_string(-status));
  for (int64_t i = 0; i < n64; i++)
    for (int64_t j = 0; j < r64; j++) X[i * r64 + j] = static_cast<float>(rhs[j * n64 + i]);
  return info.Env().Undefined();
}
