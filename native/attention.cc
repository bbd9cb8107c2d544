// Fused scaled-dot-product attention with grouped-query heads, FlashAttention style on the CPU: each task
// takes the query rows of one (batch, kv head, query block) — all G = H/KVH query heads of the group at once,
// so every key/value block loaded is reused G times — and walks the key blocks with an online softmax
// (running max m and sum l per row), so no [T, S] score matrix is ever materialised. The backward pass
// recomputes the probabilities from the saved log-sum-exp (FlashAttention-2). The block products run on the
// register-tiled loops of tiles.h.
#include <omp.h>
#include <algorithm>
#include <vector>
#include "fused.h"
#include "registry.h"
#include "tiles.h"

namespace peftjs {

constexpr int64_t kBK = 64;    // keys per block
constexpr int64_t kRows = 64;  // target query rows (time steps × group heads) per task

struct Attn {
  const float *q, *k, *v, *out, *lse, *gout;
  const uint8_t* keyMask;
  float *o, *l, *gq, *gk, *gv;  // forward outputs (o, l) or backward outputs (gq, gk, gv)
  int64_t B, T, S, sCap, H, KVH, D, G, Tq;
  float scale;
  bool causal;
  // Query rows of task (b, kvh) from time t0: row r is time t0 + r/G, head kvh·G + r%G; its offset in q/out/gq.
  int64_t rowOffset(int64_t b, int64_t kvh, int64_t t0, int64_t r) const {
    return ((b * T + t0 + r / G) * H + kvh * G + r % G) * D;
  }
  int64_t kvOffset(int64_t b, int64_t j, int64_t kvh, int64_t cap) const { return ((b * cap + j) * KVH + kvh) * D; }
  int64_t lseIndex(int64_t b, int64_t kvh, int64_t t0, int64_t r) const {
    return (b * H + kvh * G + r % G) * T + t0 + r / G;
  }
  // One past the last key the rows of times [t0, t1) can see.
  int64_t keyEnd(int64_t t1) const { return causal ? std::clamp<int64_t>(S - T + t1, 0, S) : S; }
};

// dst[d][jj] = src row jj (rows `stride` apart), column d, for jj < nk; zero for nk ≤ jj < kBK.
static void transposeBlock(const float* src, int64_t stride, int64_t nk, int64_t D, float* dst) {
  for (int64_t d = 0; d < D; d++) {
    for (int64_t jj = 0; jj < nk; jj++) dst[d * kBK + jj] = src[jj * stride + d];
    for (int64_t jj = nk; jj < kBK; jj++) dst[d * kBK + jj] = 0;
  }
}

// S[r][jj] = Σ_d A[r][d]·Bt[d][jj] for r < R, jj < kBK (A rows contiguous, D apart).
static void rowsTimesBlock(const float* A, const float* Bt, float* S, int64_t R, int64_t D) {
  tileProduct(TileProduct<float>{A, D, 1, Bt, kBK, S, kBK, R, kBK, D, 1.f, 0.f});
}

// Out[i][:] += alpha · Σ_k P(i, k)·X[k][:] for i < nI, k < nK, where P(i, k) = P[i·pi + k·pk], X row k is at
// X + k·xs and Out row i at Out + i·os. One routine serves P·V, dS·K (pk = 1) and Pᵀ·dO, dSᵀ·Q (pi = 1).
static void blockTimesRows(const float* P, int64_t pi, int64_t pk, const float* X, int64_t xs, float* Out, int64_t os,
                           int64_t nI, int64_t nK, int64_t D, float alpha) {
  tileProduct(TileProduct<float>{P, pi, pk, X, xs, Out, os, nI, D, nK, alpha, 1.f});
}

// Sets the scores of keys a row may not see (beyond the causal limit, masked, or past the block's nk keys)
// to −inf. Does nothing when every row sees the whole block.
static void maskScores(const Attn& a, int64_t b, int64_t t0, int64_t R, int64_t j0, int64_t nk, float* Sb) {
  bool crossesDiagonal = a.causal && j0 + nk - 1 > a.S - a.T + t0;
  if (!crossesDiagonal && !a.keyMask && nk == kBK) return;
  const uint8_t* km = a.keyMask ? a.keyMask + b * a.S + j0 : nullptr;
  for (int64_t r = 0; r < R; r++) {
    int64_t visible = a.causal ? std::clamp<int64_t>(a.S - a.T + t0 + r / a.G + 1 - j0, 0, nk) : nk;
    float* s = Sb + r * kBK;
    for (int64_t jj = visible; jj < kBK; jj++) s[jj] = kNegInf;
    if (km)
      for (int64_t jj = 0; jj < visible; jj++)
        if (!km[jj]) s[jj] = kNegInf;
  }
}

// Per-thread scratch of the forward and backward tasks.
struct Scratch {
  std::vector<float> qs, acc, dout, kt, vt, s, dp, m, l, di;
  Scratch(int64_t R, int64_t D)
      : qs(R * D), acc(R * D), dout(R * D), kt(D * kBK), vt(D * kBK), s(R * kBK), dp(R * kBK), m(R), l(R), di(R) {}
};

// Loads the R query rows from t0 scaled by `scale` (so scores are Qs·K) into qs.
static void loadQueries(const Attn& a, int64_t b, int64_t kvh, int64_t t0, int64_t R, Scratch& w) {
  for (int64_t r = 0; r < R; r++) {
    const float* src = a.q + a.rowOffset(b, kvh, t0, r);
#pragma omp simd
    for (int64_t d = 0; d < a.D; d++) w.qs[r * a.D + d] = src[d] * a.scale;
  }
}

static void forwardTask(const Attn& a, int64_t b, int64_t kvh, int64_t t0, Scratch& w) {
  const int64_t D = a.D, nt = std::min(a.Tq, a.T - t0), R = nt * a.G, kvStride = a.KVH * D;
  loadQueries(a, b, kvh, t0, R, w);
  std::fill_n(w.acc.begin(), R * D, 0.f);
  std::fill_n(w.m.begin(), R, kNegInf);
  std::fill_n(w.l.begin(), R, 0.f);
  int64_t kEnd = a.keyEnd(t0 + nt);
  for (int64_t j0 = 0; j0 < kEnd; j0 += kBK) {
    int64_t nk = std::min(kBK, kEnd - j0);
    const float* kb = a.k + a.kvOffset(b, j0, kvh, a.sCap);
    const float* vb = a.v + a.kvOffset(b, j0, kvh, a.sCap);
    transposeBlock(kb, kvStride, nk, D, w.kt.data());
    rowsTimesBlock(w.qs.data(), w.kt.data(), w.s.data(), R, D);
    maskScores(a, b, t0, R, j0, nk, w.s.data());
    // Online softmax: with the new running max m', rescale the old sum and accumulator by exp(m − m').
    for (int64_t r = 0; r < R; r++) {
      float* s = w.s.data() + r * kBK;
      float mx = kNegInf;
#pragma omp simd reduction(max : mx)
      for (int64_t jj = 0; jj < kBK; jj++) mx = s[jj] > mx ? s[jj] : mx;
      float mNew = std::max(w.m[r], mx);
      if (mNew == kNegInf) {  // nothing visible yet: contributes nothing
        std::fill_n(s, kBK, 0.f);
        continue;
      }
      float corr = expFast(w.m[r] - mNew), sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t jj = 0; jj < kBK; jj++) {
        s[jj] = expFast(s[jj] - mNew);
        sum += s[jj];
      }
      w.l[r] = w.l[r] * corr + sum;
      w.m[r] = mNew;
      if (corr != 1.f)
        for (int64_t d = 0; d < D; d++) w.acc[r * D + d] *= corr;
    }
    blockTimesRows(w.s.data(), kBK, 1, vb, kvStride, w.acc.data(), D, R, nk, D, 1.f);
  }
  for (int64_t r = 0; r < R; r++) {
    bool none = w.l[r] == 0;  // a row that sees no key: zeros and lse = −inf
    float inv = none ? 0.f : 1.f / w.l[r];
    float* o = a.o + a.rowOffset(b, kvh, t0, r);
    for (int64_t d = 0; d < D; d++) o[d] = w.acc[r * D + d] * inv;
    a.l[a.lseIndex(b, kvh, t0, r)] = none ? kNegInf : w.m[r] + std::log(w.l[r]);
  }
}

// FlashAttention-2 backward of one (b, kvh) task: every query row of the group's heads and every key of kv
// head kvh, so gq rows and gk/gv rows are owned by this task alone (no write races). Per query block:
// P = exp(Qs·Kᵀ − lse), dP = dO·Vᵀ, dS = P∘(dP − Di) with Di = rowsum(dO∘O);
// dV += Pᵀ·dO, dK += dSᵀ·Qs (Qs = scale·Q), dQ += scale·dS·K.
static void backwardTask(const Attn& a, int64_t b, int64_t kvh, Scratch& w) {
  const int64_t D = a.D, kvStride = a.KVH * D;
  for (int64_t j = 0; j < a.S; j++) {
    std::fill_n(a.gk + a.kvOffset(b, j, kvh, a.S), D, 0.f);
    std::fill_n(a.gv + a.kvOffset(b, j, kvh, a.S), D, 0.f);
  }
  for (int64_t t0 = 0; t0 < a.T; t0 += a.Tq) {
    const int64_t nt = std::min(a.Tq, a.T - t0), R = nt * a.G;
    loadQueries(a, b, kvh, t0, R, w);
    std::fill_n(w.acc.begin(), R * D, 0.f);  // dQ of the block
    for (int64_t r = 0; r < R; r++) {
      const int64_t off = a.rowOffset(b, kvh, t0, r);
      std::copy_n(a.gout + off, D, w.dout.begin() + r * D);
      float di = 0;
      for (int64_t d = 0; d < D; d++) di += w.dout[r * D + d] * a.out[off + d];
      w.di[r] = di;
      w.m[r] = a.lse[a.lseIndex(b, kvh, t0, r)];
    }
    int64_t kEnd = a.keyEnd(t0 + nt);
    for (int64_t j0 = 0; j0 < kEnd; j0 += kBK) {
      int64_t nk = std::min(kBK, kEnd - j0);
      const float* kb = a.k + a.kvOffset(b, j0, kvh, a.sCap);
      const float* vb = a.v + a.kvOffset(b, j0, kvh, a.sCap);
      transposeBlock(kb, kvStride, nk, D, w.kt.data());
      transposeBlock(vb, kvStride, nk, D, w.vt.data());
      rowsTimesBlock(w.qs.data(), w.kt.data(), w.s.data(), R, D);
      maskScores(a, b, t0, R, j0, nk, w.s.data());
      rowsTimesBlock(w.dout.data(), w.vt.data(), w.dp.data(), R, D);
      for (int64_t r = 0; r < R; r++) {
        float* p = w.s.data() + r * kBK;
        float* ds = w.dp.data() + r * kBK;
        float lse = w.m[r], di = w.di[r];
        if (lse == kNegInf) {  // a row that saw no key has no gradient
          std::fill_n(p, kBK, 0.f);
          std::fill_n(ds, kBK, 0.f);
          continue;
        }
#pragma omp simd
        for (int64_t jj = 0; jj < kBK; jj++) {
          p[jj] = expFast(p[jj] - lse);
          ds[jj] = p[jj] * (ds[jj] - di);
        }
      }
      float* gkb = a.gk + a.kvOffset(b, j0, kvh, a.S);
      float* gvb = a.gv + a.kvOffset(b, j0, kvh, a.S);
      blockTimesRows(w.s.data(), 1, kBK, w.dout.data(), D, gvb, kvStride, nk, R, D, 1.f);
      blockTimesRows(w.dp.data(), 1, kBK, w.qs.data(), D, gkb, kvStride, nk, R, D, 1.f);
      blockTimesRows(w.dp.data(), kBK, 1, kb, kvStride, w.acc.data(), D, R, nk, D, a.scale);
    }
    for (int64_t r = 0; r < R; r++) std::copy_n(w.acc.begin() + r * D, D, a.gq + a.rowOffset(b, kvh, t0, r));
  }
}

// Reads and checks what attention and attentionBackward share: q, k, v (arguments 0–2), keyMask (maskIdx) and
// B, T, S, sCap, H, KVH, D, scale, causal (from sizeIdx on).
static Attn readAttn(const Args& args, size_t maskIdx, size_t sizeIdx) {
  Attn a{};
  a.q = args.f32(0);
  a.k = args.f32(1);
  a.v = args.f32(2);
  a.keyMask = args.u8OrNull(maskIdx);
  const char* names[] = {"B", "T", "S", "sCap", "H", "KVH", "D"};
  int64_t* dims[] = {&a.B, &a.T, &a.S, &a.sCap, &a.H, &a.KVH, &a.D};
  for (size_t i = 0; i < 7; i++) *dims[i] = sizeArg(args, sizeIdx + i, names[i]);
  a.scale = static_cast<float>(args.num(sizeIdx + 7));
  a.causal = args.flag(sizeIdx + 8);
  if (a.KVH == 0 || a.H % a.KVH)
    args.fail("H (" + std::to_string(a.H) + ") must be a positive multiple of KVH (" + std::to_string(a.KVH) + ")");
  if (a.sCap < a.S) args.fail("sCap (" + std::to_string(a.sCap) + ") must be ≥ S (" + std::to_string(a.S) + ")");
  a.G = a.H / a.KVH;
  a.Tq = std::max<int64_t>(1, kRows / a.G);
  int64_t kvLen = a.B ? (a.B - 1) * a.sCap * a.KVH * a.D + a.S * a.KVH * a.D : 0;
  need(args, 0, "q", a.B * a.T * a.H * a.D);
  need(args, 1, "k", kvLen);
  need(args, 2, "v", kvLen);
  if (a.keyMask) need(args, maskIdx, "keyMask", a.B * a.S);
  return a;
}

// Runs task(b, kvh, t0, scratch) over every (b, kvh, query block) (or every (b, kvh) when perBlock is false).
template <typename F>
static void forEachTask(const Attn& a, bool perBlock, F task) {
  int64_t nBlocks = perBlock ? (a.T + a.Tq - 1) / a.Tq : 1, n = a.B * a.KVH * nBlocks;
  bool parallel = n > 1 && a.B * a.T * a.S * a.H * a.D >= kParallelMin;
#pragma omp parallel if (parallel)
  {
    Scratch w(a.Tq * a.G, a.D);
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < n; i++) task(i / nBlocks / a.KVH, i / nBlocks % a.KVH, i % nBlocks * a.Tq, w);
  }
}

PEFTJS_EXPORT(attention) {
  Args args(info, "attention");
  Attn a = readAttn(args, 5, 6);
  a.o = args.f32(3);
  a.l = args.f32(4);
  need(args, 3, "out", a.B * a.T * a.H * a.D);
  need(args, 4, "lse", a.B * a.H * a.T);
  forEachTask(a, true, [&](int64_t b, int64_t kvh, int64_t t0, Scratch& w) { forwardTask(a, b, kvh, t0, w); });
  return args.env().Undefined();
}

PEFTJS_EXPORT(attentionBackward) {
  Args args(info, "attentionBackward");
  Attn a = readAttn(args, 5, 10);
  a.out = args.f32(3);
  a.lse = args.f32(4);
  a.gout = args.f32(6);
  a.gq = args.f32(7);
  a.gk = args.f32(8);
  a.gv = args.f32(9);
  int64_t nq = a.B * a.T * a.H * a.D, nkv = a.B * a.S * a.KVH * a.D;
  need(args, 3, "out", nq);
  need(args, 4, "lse", a.B * a.H * a.T);
  need(args, 6, "gout", nq);
  need(args, 7, "gq", nq);
  need(args, 8, "gk", nkv);
  need(args, 9, "gv", nkv);
  forEachTask(a, false, [&](int64_t b, int64_t kvh, int64_t, Scratch& w) { backwardTask(a, b, kvh, w); });
  return args.env().Undefined();
}

}  // namespace peftjs
