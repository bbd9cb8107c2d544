/**
 * The kernel contract shared by the two backends.
 *
 * `native` (the C++ addon, `native/*.cc`) and `reference` (pure TypeScript, `backend/reference/*.ts`)
 * implement exactly this interface with identical argument order, so a kernel call site does not know which
 * backend runs it and tests run the same call on both.
 *
 * Conventions:
 * - Arrays are typed arrays whose element 0 is the first element the kernel reads or writes (the caller
 *   passes `storage.subarray(offset)`); unless a stride list is given, data is contiguous row-major.
 * - bf16 and f16 values travel as raw bits in a `Uint16Array`.
 * - Sizes are element counts; strides are element strides (0 = broadcast along that axis).
 * - "accumulates" means the kernel adds into the output (`+=`) instead of overwriting it.
 * - Kernels never allocate tensors; the caller provides every output.
 */

/** Raw bits of bf16 or f16 values. */
export type U16 = Uint16Array;
/** Any storage array a tensor can own. */
export type AnyArray = Float32Array | Uint16Array | Int32Array | Uint8Array | BigInt64Array;

/** Element-wise binary operations: `out = a OP b`. */
export enum BinaryOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
}

/** Element-wise unary operations: `out = f(x)`. */
export enum UnaryOp {
  Exp = 0,
  Log = 1,
  Silu = 2,
  /** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — GPT-2's `gelu_new`. */
  GeluTanh = 3,
  /** GELU, exact: 0.5·x·(1 + erf(x/√2)) — BERT's `gelu`. */
  GeluErf = 4,
  Tanh = 5,
  Relu = 6,
  Sigmoid = 7,
  Sqrt = 8,
  Square = 9,
  Neg = 10,
}

/** Which operand dtype a GEMM reads: both f32, or both bf16 (fp32 accumulation in both cases). */
export enum GemmDType {
  F32 = 0,
  BF16 = 1,
}

export interface Kernels {
  readonly name: 'native' | 'reference';
  /** Threads used by every kernel (GEMM libraries and the element-wise thread pool). */
  setNumThreads(n: number): void;
  getNumThreads(): number;

  // ---------------------------------------------------------------- data movement
  /**
   * `dst[dstStrides·idx] = src[srcStrides·idx]` for every index `idx` of `shape` (rank ≤ 8). `src` and `dst` are
   * typed arrays of the same element size (any dtype); strides are ≥ 0.
   */
  copyStrided(src: AnyArray, srcStrides: number[], dst: AnyArray, dstStrides: number[], shape: number[]): void;
  /** f32 → bf16 bits, round to nearest even; NaN stays NaN. */
  castF32ToBF16(src: Float32Array, dst: U16, n: number): void;
  /** bf16 bits → f32 (exact). */
  castBF16ToF32(src: U16, dst: Float32Array, n: number): void;
  /** IEEE half bits → f32 (exact, including subnormals, inf and NaN). */
  castF16ToF32(src: U16, dst: Float32Array, n: number): void;
  /** `dst[i] = value` for i < n. */
  fill(dst: Float32Array, n: number, value: number): void;
  /** `out[i] = alpha·x[i] + beta` for i < n (`out` may be `x`). */
  affine(x: Float32Array, out: Float32Array, n: number, alpha: number, beta: number): void;
  /** `y[i] += alpha·x[i]` for i < n (gradient accumulation). */
  axpy(x: Float32Array, y: Float32Array, n: number, alpha: number): void;

  // ---------------------------------------------------------------- GEMM
  /**
   * Batched row-major GEMM with fp32 accumulation: for each b < batch,
   * `C_b = alpha · op(A_b) · op(B_b) + beta · C_b` where op(X) is X or Xᵀ.
   * A_b starts at `a[b·strideA]` and is stored [M,K] (or [K,M] when transA); B_b starts at `b[b·strideB]` and is
   * stored [K,N] (or [N,K] when transB); C_b starts at `c[b·strideC]`, stored [M,N]. A stride of 0 reuses the
   * same matrix for every batch entry (strideC = 0: the entries are applied one after another into the same C).
   * `dtype` says whether `a` and `b` are f32 or bf16 bits; C is always f32. With beta = 0, C is overwritten without
   * being read (NaN or garbage in C does not propagate), as BLAS does.
   */
  gemm(
    dtype: GemmDType,
    a: Float32Array | U16,
    b: Float32Array | U16,
    c: Float32Array,
    batch: number,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    beta: number,
  ): void;

  // ---------------------------------------------------------------- element-wise
  /**
   * `out[idx] = a[aStrides·idx] OP b[bStrides·idx]` for every index of `shape` (rank ≤ 8); `out` is contiguous.
   * Broadcasting is expressed by zero strides.
   */
  binary(op: BinaryOp, a: Float32Array, aStrides: number[], b: Float32Array, bStrides: number[], out: Float32Array, shape: number[]): void;
  /** `out[i] = f(x[i])` for i < n (`out` may be `x`). */
  unary(op: UnaryOp, x: Float32Array, out: Float32Array, n: number): void;
  /** `gx[i] = gy[i] · f'(x[i])` for i < n; `y = f(x)` is given too (exp, tanh, sigmoid, sqrt use it); relu'(0) = 0. */
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, n: number): void;
  /** SwiGLU: `out[i] = silu(g[i]) · u[i]`. */
  swiglu(g: Float32Array, u: Float32Array, out: Float32Array, n: number): void;
  /** Backward of {@link swiglu}: writes `gg` and `gu`. */
  swigluBackward(g: Float32Array, u: Float32Array, gy: Float32Array, gg: Float32Array, gu: Float32Array, n: number): void;
  /**
   * `out[idx] = mask[maskStrides·idx] ≠ 0 ? a[aStrides·idx] : b[bStrides·idx]` over `shape`; `out` contiguous.
   */
  where(
    mask: Uint8Array,
    maskStrides: number[],
    a: Float32Array,
    aStrides: number[],
    b: Float32Array,
    bStrides: number[],
    out: Float32Array,
    shape: number[],
  ): void;
  /**
   * Inverted dropout with a counter-based RNG: element i is kept when `uniform(seed, i) ≥ p`, where
   * `uniform` is {@link hashUniform}; kept elements are scaled by 1/(1−p). Writes `out` and the keep `mask` (0/1).
   */
  dropout(x: Float32Array, out: Float32Array, mask: Uint8Array, n: number, p: number, seed: number): void;

  // ---------------------------------------------------------------- reductions
  /** `out[o·inner + i] = Σ_r x[(o·red + r)·inner + i]` for o < outer, i < inner (overwrites `out`). */
  sum(x: Float32Array, out: Float32Array, outer: number, red: number, inner: number): void;
  /** Σ x[i]² over i < n, accumulated in double precision (global gradient norms). */
  sumSquares(x: Float32Array, n: number): number;

  // ---------------------------------------------------------------- softmax
  /** Row-wise softmax (or log-softmax when `log`) over the last axis of a [rows, cols] matrix. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, log: boolean): void;
  /** Backward of {@link softmax} given its output `y`: writes `gx`. */
  softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, cols: number, log: boolean): void;

  // ---------------------------------------------------------------- normalisation
  /**
   * RMSNorm over rows of [rows, cols]: `rstd = 1/√(mean(x²) + eps)`, `out = x · rstd · w` (w may be null = 1).
   * Writes `rstd` [rows] for the backward pass.
   */
  rmsNorm(x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void;
  /** Backward of {@link rmsNorm}: writes `gx`; accumulates `gw` when it is not null. */
  rmsNormBackward(
    x: Float32Array,
    w: Float32Array | null,
    rstd: Float32Array,
    gy: Float32Array,
    gx: Float32Array,
    gw: Float32Array | null,
    rows: number,
    cols: number,
  ): void;
  /** LayerNorm over rows: `out = (x − mean)·rstd·w + b` (w, b may be null). Writes `mean`, `rstd` [rows]. */
  layerNorm(
    x: Float32Array,
    w: Float32Array | null,
    b: Float32Array | null,
    out: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** Backward of {@link layerNorm}: writes `gx`; accumulates `gw`, `gb` when not null. */
  layerNormBackward(
    x: Float32Array,
    w: Float32Array | null,
    mean: Float32Array,
    rstd: Float32Array,
    gy: Float32Array,
    gx: Float32Array,
    gw: Float32Array | null,
    gb: Float32Array | null,
    rows: number,
    cols: number,
  ): void;

  // ---------------------------------------------------------------- rotary embeddings
  /**
   * Rotary position embedding of x [batch, seq, heads, dim] into `out` (may be `x`). `cos`, `sin` hold
   * [cosBatch, seq, dim/2] angles' cosines and sines; batch b reads table `b·cosBatchStride` (0 = shared).
   * `interleaved`: pairs are (2i, 2i+1) — llama2.c / Meta layout; otherwise (i, i + dim/2) — HF "rotate_half".
   * Pair i uses column i of the tables. `inverse` rotates by −θ (this is the backward pass).
   */
  rope(
    x: Float32Array,
    out: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    batch: number,
    seq: number,
    heads: number,
    dim: number,
    cosBatchStride: number,
    interleaved: boolean,
    inverse: boolean,
  ): void;

  // ---------------------------------------------------------------- attention
  /**
   * Fused scaled-dot-product attention with grouped-query heads, computed block-wise with an online softmax
   * (no [T, S] score matrix per head is materialised).
   * - q [B, T, H, D] contiguous; k, v [B, sCap, KVH, D] of which the first S positions are used (sCap ≥ S lets
   *   a KV cache be passed directly); query head h reads kv head ⌊h / (H / KVH)⌋.
   * - `causal`: query t (absolute position S − T + t) sees keys j ≤ S − T + t.
   * - `keyMask` [B, S] (nullable): keys with mask 0 are not attended (padding). A query that sees no key
   *   outputs zeros.
   * - Writes out [B, T, H, D] and the row log-sum-exp `lse` [B, H, T] (of the scaled scores) for the backward;
   *   a query that sees no key gets lse = −∞.
   */
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    keyMask: Uint8Array | null,
    B: number,
    T: number,
    S: number,
    sCap: number,
    H: number,
    KVH: number,
    D: number,
    scale: number,
    causal: boolean,
  ): void;
  /**
   * Backward of {@link attention} (recomputes probabilities from `lse`): writes gq [B,T,H,D] and gk, gv
   * [B, S, KVH, D] (dense, sCap = S for the gradients).
   */
  attentionBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    keyMask: Uint8Array | null,
    gout: Float32Array,
    gq: Float32Array,
    gk: Float32Array,
    gv: Float32Array,
    B: number,
    T: number,
    S: number,
    sCap: number,
    H: number,
    KVH: number,
    D: number,
    scale: number,
    causal: boolean,
  ): void;

  // ---------------------------------------------------------------- embedding
  /**
   * `out[i, :] = table[ids[i], :]` for i < n; `table` [vocab, dim] is f32 or bf16 bits (`bf16` flag), out f32.
   * Throws when an id is outside [0, vocab).
   */
  embedding(table: Float32Array | U16, bf16: boolean, ids: Int32Array, out: Float32Array, n: number, dim: number, vocab: number): void;
  /** Scatter-add backward: `gTable[ids[i], :] += gy[i, :]` (ids are checked against gTable's row count). */
  embeddingBackward(ids: Int32Array, gy: Float32Array, gTable: Float32Array, n: number, dim: number): void;

  // ---------------------------------------------------------------- loss
  /**
   * Cross-entropy fused with log-softmax over logits [N, V]: `losses[i] = lse_i − logits[i, t_i]` and `lse[i]`;
   * rows whose target equals `ignoreIndex` get loss 0 (their `lse` is still written). Returns the number of rows not
   * ignored.
   * Throws when a target is outside [0, V) and not `ignoreIndex`.
   */
  crossEntropy(logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, N: number, V: number, ignoreIndex: number): number;
  /**
   * Backward of {@link crossEntropy}: `gl[i, :] = gy[i] · (softmax(logits_i) − onehot(t_i))`, zero rows for ignored
   * targets; `gy` [N] is the upstream gradient per row.
   */
  crossEntropyBackward(
    logits: Float32Array,
    targets: Int32Array,
    lse: Float32Array,
    gy: Float32Array,
    gl: Float32Array,
    N: number,
    V: number,
    ignoreIndex: number,
  ): void;

  // ---------------------------------------------------------------- heterogeneous-batch LoRA (serving)
  /**
   * Punica's BGMV: for every row r with a = rowAdapter[r] ≥ 0, `y[r, :] += scale[a] · B_a · (A_a · x[r, :])`, where
   * adapter a owns rows [offset[a], offset[a] + rank[a]) of the pools `a` ([*, inF]) and `bT` (Bᵀ, [*, outF]); ranks
   * may differ per adapter. Rows with −1 are untouched. x [rows, inF], y [rows, outF] (accumulates).
   */
  loraGather(
    x: Float32Array,
    y: Float32Array,
    rowAdapter: Int32Array,
    a: Float32Array,
    bT: Float32Array,
    offset: Int32Array,
    rank: Int32Array,
    scale: Float32Array,
    rows: number,
    inF: number,
    outF: number,
    nAdapters: number,
  ): void;

  // ---------------------------------------------------------------- linear algebra (LAPACK in the addon)
  /**
   * Thin SVD of row-major `a` [m, n] = `u` [m, k] · diag(`s` [k]) · `vt` [k, n], k = min(m, n); `s` descending and
   * non-negative; `a` is not modified.
   */
  svd(a: Float32Array, m: number, n: number, u: Float32Array, s: Float32Array, vt: Float32Array): void;
  /** `x` [n, nrhs] = `a`⁻¹ · `b` for row-major `a` [n, n], `b` [n, nrhs] (LU in double precision); throws if singular. */
  solve(a: Float32Array, b: Float32Array, n: number, nrhs: number, x: Float32Array): void;

  // ---------------------------------------------------------------- optimizers
  /**
   * One fused AdamW step (Loshchilov & Hutter, decoupled weight decay) for i < n:
   * `p −= lr·wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr · (m/bc1) / (√(v/bc2) + eps)`
   * with bias corrections bc1 = 1 − β1^t and bc2 = 1 − β2^t passed in.
   */
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;
  /**
   * SGD with momentum, PyTorch semantics: `g' = g + wd·p; buf = μ·buf + (1 − dampening)·g'` (buf = g' on the
   * first step, flagged by `first`); `d = nesterov ? g' + μ·buf : buf` (μ = 0: d = g', and `buf` is neither read
   * nor written); `p −= lr·d`.
   */
  sgd(
    p: Float32Array,
    g: Float32Array,
    buf: Float32Array,
    n: number,
    lr: number,
    momentum: number,
    dampening: number,
    weightDecay: number,
    nesterov: boolean,
    first: boolean,
  ): void;

  // ---------------------------------------------------------------- merging
  /**
   * f32 → IEEE half bits, round to nearest even (subnormals rounded exactly); |x| ≥ 65520 gives ±inf; NaN gives a
   * quiet NaN keeping its sign and its top 10 payload bits. The inverse of {@link castF16ToF32} on halves.
   */
  castF32ToF16(src: Float32Array, dst: U16, n: number): void;
  /**
   * `out[i] = Σⱼ w[j]·inputs[j][i]` for i < n, input j read as `dtypes[j]` (f32, or bf16 / f16 bits converted
   * exactly), accumulated in f32 in input order as {@link affine} then {@link axpy} would (the first term assigned,
   * each next one added), then cast to `outDtype` (bf16 / f16 round to nearest even, as {@link castF32ToBF16} /
   * {@link castF32ToF16}): a streamed weighted merge's range in one pass, without an f32 copy of the sum. At least one
   * input; `out` may be one of the inputs when it has the output dtype.
   */
  weightedSum(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], w: Float32Array, n: number, outDtype: CastDType, out: Float32Array | U16): void;
  /**
   * Histogram of magnitude bits (the f32 bit pattern with the sign cleared, which orders like |v|) of a vector v of n
   * entries given as `inputs` read as `dtypes` (as {@link weightedSum} reads them): one input x (v = x) or two, x and a
   * base (v = x − base subtracted in f32: a task vector read straight from two checkpoints' ranges). For every i < n
   * whose bits b satisfy `b >>> matchShift === match` (matchShift = 31, match = 0: every entry),
   * `hist[(b >>> shift) & (bins − 1)] += 1` (accumulates). `bins` is a power of two ≤ 65536; shifts are ≤ 31.
   * The passes of a radix select of the k-th largest |v| (TIES, Breadcrumbs).
   */
  magnitudeHistogram(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number, hist: Int32Array, bins: number, shift: number, matchShift: number, match: number): void;
  /**
   * One pass of bracketed rank searches over the magnitude bits b of several vectors read together: with `based`,
   * vector r is inputs[r + 1] − inputs[0] (task vectors read straight from checkpoints' ranges, subtracted in f32),
   * else inputs[r]; each input read as its dtype (as {@link weightedSum} reads them) and once for all the vectors.
   * Bracket k reads vector `rows[k]` with bounds lo = bounds[2k] ≤ hi = bounds[2k + 1] < 2³¹: it adds to
   * counts[4k, 4k + 4) the numbers of entries with b < lo, b = lo, lo < b < hi and b = hi (> lo), and writes the b of
   * the third kind into `lists[k]` from index counts[4k + 2] (its value on entry) on, in unspecified order, as many as
   * fit. Consecutive chunks of the vectors accumulate into the same lists.
   */
  magnitudeBrackets(
    dtypes: Int32Array,
    inputs: readonly (Float32Array | U16)[],
    n: number,
    based: boolean,
    rows: Int32Array,
    bounds: Float64Array,
    lists: readonly Int32Array[],
    counts: Float64Array,
  ): void;
  /**
   * The magnitude bits of the entries `at` [count] (each in [0, n)) of a vector (given as {@link magnitudeHistogram}
   * takes it), written to `out` [count]: the sample that brackets a rank.
   */
  magnitudeGather(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number, at: Int32Array, count: number, out: Int32Array): void;
  /**
   * The index i < n of the entry of a vector (given as {@link magnitudeHistogram} takes it) with magnitude bits `bits`
   * that comes `rank`-th (from 0) among such entries in index order, or −1 − (how many there are) when there are not
   * more than `rank`: where a tie at a magnitude boundary is cut.
   */
  magnitudeRankIndex(dtypes: Int32Array, inputs: readonly (Float32Array | U16)[], n: number, bits: number, rank: number): number;
  /**
   * Keeps, in place, a band of magnitude ranks given by its boundary magnitudes and, for entries equal to a boundary,
   * an index cut: with b the magnitude bits of x[i] and `at = offset + i` its index in the whole vector, the entry
   * is kept when (b > low, or b = low and at ≥ lowCut) and (b < high, or b = high and at < highCut); every other
   * entry is zeroed. low = −1 / high = 2³¹ disable a boundary.
   */
  keepMagnitudeBand(x: Float32Array, n: number, offset: number, low: number, lowCut: number, high: number, highCut: number): void;
  /**
   * TIES trim, sign election and disjoint mean over k rows, written in `outDtype`: `inputs` [k + 1] read as `dtypes`
   * are the base and the k rows; row j's task vector τⱼ is the row itself, or the row minus the base when `models`
   * (the rows are fine-tuned models' ranges, subtracted in f32). Each τⱼ is first trimmed to its band of magnitudes:
   * `bands` holds [low, lowCut, high, highCut] per row as {@link keepMagnitudeBand} takes them (with `offset` the index
   * of entry 0 in the whole vector), an entry outside its row's band counting as 0; an empty `bands` keeps every entry.
   * Per entry, in f32: vⱼ = wⱼτⱼ, the elected sign is that of Σⱼ vⱼ (`SignElection.Sum`) or Σⱼ sign vⱼ (`Count`), +
   * when ≥ 0; acc and agree are the sums of the vⱼ of that sign (zeros never agree) and of their wⱼ — of every vⱼ and
   * wⱼ with `SignElection.None` — and `out[i] = base[i] + lambda·acc / (normalize && agree ≠ 0 ? agree : 1)`, where
   * without an election dividing needs |agree| ≥ 1e-8 (as mergekit).
   */
  tiesCombine(
    dtypes: Int32Array,
    inputs: readonly (Float32Array | U16)[],
    n: number,
    w: Float32Array,
    bands: Float64Array,
    offset: number,
    outDtype: CastDType,
    out: Float32Array | U16,
    lambda: number,
    normalize: boolean,
    election: SignElection,
    models: boolean,
  ): void;
}

/**
 * A chunk of the vectors a selection reads, as {@link Kernels.magnitudeBrackets} takes them: when `based`, vector v is
 * inputs[v + 1] − inputs[0] (task vectors read straight from checkpoints' ranges, subtracted in f32), else inputs[v];
 * each input in its dtype.
 */
export interface VectorChunk {
  dtypes: Int32Array;
  inputs: readonly (Float32Array | U16)[];
  based: boolean;
}

/** Vector v of a chunk as the one-vector kernels ({@link Kernels.magnitudeHistogram}, …) take it: [x], or [x, base]. */
export function vectorOf({ dtypes, inputs, based }: VectorChunk, v: number): [Int32Array, (Float32Array | U16)[]] {
  return based ? [Int32Array.of(dtypes[v + 1], dtypes[0]), [inputs[v + 1], inputs[0]]] : [dtypes.subarray(v, v + 1), [inputs[v]]];
}

/**
 * The counter-based uniform draw both backends use for dropout: murmur3's fmix32 of
 * `seed ⊕ (i · 0x9E3779B1)`, top 24 bits scaled to [0, 1). Identical on every backend and thread split.
 */
export function hashUniform(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return (h >>> 8) / 16777216;
}

/** The element types the merge kernels ({@link Kernels.weightedSum}, {@link Kernels.tiesCombine}, …) read and write. */
export enum CastDType {
  F32 = 0,
  BF16 = 1,
  F16 = 2,
}

/** How {@link Kernels.tiesCombine} elects each entry's sign: no election (every row counts), by the weighted sum, by count. */
export enum SignElection {
  None = 0,
  Sum = 1,
  Count = 2,
}
