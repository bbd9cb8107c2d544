/**
 * Out-of-core full-model merging: the checkpoints (single-file or sharded safetensors) are read tensor by tensor
 * and each output tensor is written straight to its place in the output shards (see ShardWriter). Methods that
 * work element-wise (linear, task arithmetic, TIES, Breadcrumbs — the last two after passes that find their
 * per-tensor magnitude thresholds) are streamed in chunks of a fixed number of elements read in each input's own
 * dtype, so memory is a few chunks whatever the tensor size; the others get the whole tensor's inputs in f32.
 * A native thread reads ahead of the merge (prefetch.ts) and a worker writes behind it (write-behind.ts), so disk reads
 * and writes overlap compute; the largest tensor is merged last (see mergeOrder). Files other than weights (config.json,
 * tokenizer, …) are copied from the base.
 */
import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openCheckpointTensors } from '../io/sharded.js';
import { dtypeSize, type SafeArray, type SafeDType, type TensorInfo, type TensorSource } from '../io/safetensors.js';
import { backend, nativeExtras } from '../engine/index.js';
import { CastDType } from '../engine/backend/kernels.js';
import { fromF32, isFloatDType, toF32, type FloatDType, type TypedRange } from './dtype.js';
import { Prefetcher } from './prefetch.js';
import { ShardWriter, type TensorSpec } from './shard-writer.js';

/** Where a tensor sits in the model, for per-layer parameter gradients. */
export interface TensorContext {
  name: string;
  shape: readonly number[];
  /** Decoder/encoder block index, or null for tensors outside the blocks (embeddings, final norm, head). */
  layer: number | null;
  /** Number of blocks in the model. */
  numLayers: number;
}

/**
 * Merges one tensor given its f32 copies from every input checkpoint, in input order; the merger owns the
 * buffers and may overwrite them. Returns the merged tensor (possibly one of them).
 */
export type TensorMerger = (ctx: TensorContext, tensors: Float32Array[]) => Float32Array;

/**
 * Called for each range [offset, offset + length) of the current tensor with every input's chunk, in input order;
 * returning false ends the pass.
 */
export type ChunkVisitor = (chunks: readonly TypedRange[], offset: number, length: number) => void | boolean;

/** One pass over the current tensor's inputs, range by range, in order, from the range at offset `from` (default 0). */
export type TensorScan = (visit: ChunkVisitor, from?: number) => void;

/** Merges one range: writes the merged values of the range starting at `offset` into `out` (its length), in its dtype. */
export type ChunkMerge = (chunks: readonly TypedRange[], offset: number, out: TypedRange) => void;

/**
 * A merge computed range by range: given a tensor's context and a scan over its inputs (which it may run first, e.g.
 * to find TIES thresholds), returns the merge of one range (its final pass), or null when the method needs the whole
 * tensor (then the {@link TensorMerger} runs).
 */
export type ChunkedMerger = (ctx: TensorContext, scan: TensorScan) => ChunkMerge | null;

/** Progress after each tensor. */
export interface MergeProgress {
  index: number;
  total: number;
  name: string;
  bytesRead: number;
  bytesTotal: number;
}

/** Options of {@link mergeCheckpoints}. */
export interface StreamMergeOptions {
  /** The input checkpoints (folders, or a .safetensors file or shard index); the first fixes names, order and dtypes. */
  inputs: readonly string[];
  /** The folder whose non-weight files (config.json, tokenizer, …) are copied to `out` (default: the first input). */
  filesFrom?: string;
  /** Output folder. */
  out: string;
  merge: TensorMerger;
  /** The range-by-range form of `merge`, used for the tensors where it does not return null. */
  chunked?: ChunkedMerger;
  /**
   * Elements per range of a chunked merge (default 2²¹: each range is a call of a multi-threaded kernel, which wakes
   * the other cores: at 2¹⁹, libgomp waking its thread took 5% of a warm TIES merge's CPU samples on a 2-core VM).
   */
  chunkElements?: number;
  /** Read ahead on a native thread (default: when the inputs total 256 MB or more and the backend is native). */
  prefetch?: boolean;
  /** Write and fsync output shards on a worker thread (default: when the inputs total 256 MB or more). */
  writeBehind?: boolean;
  /**
   * Read ranged merges' inputs through memory mappings of the checkpoints, the page cache in place (default: when the
   * backend can, i.e. native); false copies them into buffers with positional reads.
   */
  mapInputs?: boolean;
  /**
   * Kernel threads during the merge (default: the backend's, all cores). On 2-core AVX-512 VMs two threads computed
   * TIES 1.6× faster than one; on AVX2 ones a cold merge ran as fast on one, the reading and writing taking the other
   * core (docs/merging-performance.md).
   */
  threads?: number;
  /** Output dtype of floating tensors (default: the reference checkpoint's dtype, tensor by tensor). */
  outDtype?: FloatDType;
  /** Largest shard, in data bytes (default 5 GB, as transformers' save_pretrained). */
  maxShardBytes?: number;
  onProgress?: (p: MergeProgress) => void;
}

/** What {@link mergeCheckpoints} did. */
export interface MergeReport {
  tensors: number;
  bytesRead: number;
  bytesWritten: number;
  seconds: number;
  /** Largest tensor of the reference checkpoint, in f32 bytes (the unit merges compute in). */
  largestTensorF32Bytes: number;
  /** The process's peak resident set size so far (bytes). */
  peakRssBytes: number;
  files: string[];
}

const LAYER = /(?:^|\.)(?:layers|h|layer|blocks|block)\.(\d+)\./;

/** The block index in a tensor name (`model.layers.3.mlp.up_proj.weight` → 3), or null. */
export function layerIndex(name: string): number | null {
  const m = LAYER.exec(name);
  return m ? Number(m[1]) : null;
}

/** Number of blocks: config.json's num_hidden_layers / n_layer / num_layers, else 1 + the largest index in the names. */
export function countLayers(dir: string | null, names: readonly string[]): number {
  if (dir !== null && existsSync(join(dir, 'config.json'))) {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['num_hidden_layers', 'n_layer', 'num_layers']) if (typeof cfg[key] === 'number') return cfg[key] as number;
  }
  return 1 + Math.max(-1, ...names.map((n) => layerIndex(n) ?? -1));
}

/**
 * The order in which tensors of the given byte sizes are merged: the checkpoint's, with its largest tensor (the first
 * of equals) moved last. A merge cannot start on a tensor until it is read in every input (TIES and Breadcrumbs
 * sample it whole first; the whole-tensor methods read it whole), so a large first tensor, the embedding in most
 * checkpoints, held up the start with nothing to overlap its read; last, the read-ahead has read it long before the
 * merge gets there. Where each tensor lands in the output does not change.
 */
export function mergeOrder(sizes: readonly number[]): number[] {
  const largest = sizes.reduce((m, s, i) => (s > sizes[m] ? i : m), 0);
  return [...sizes.keys()].filter((i) => i !== largest).concat(sizes.length > 0 ? [largest] : []);
}

/** Merges whole checkpoints tensor by tensor into `opts.out`; see the module comment. */
export function mergeCheckpoints(opts: StreamMergeOptions): MergeReport {
  const started = performance.now();
  const paths = opts.inputs;
  if (paths.length === 0) throw new Error('merge: no checkpoints to merge');
  checkOutputApart(opts.out, [...paths, ...(opts.filesFrom ? [opts.filesFrom] : [])]);
  const sources: TensorSource[] = [];
  const chunkElements = opts.chunkElements ?? 1 << 21;
  if (!Number.isSafeInteger(chunkElements) || chunkElements <= 0) throw new Error(`merge: chunkElements must be a positive integer, got ${chunkElements}`);
  let reader: RangeReader | null = null;
  let prefetch: Prefetcher | null = null;
  const threads = backend().getNumThreads();
  backend().setNumThreads(opts.threads ?? threads);
  try {
    for (const p of paths) sources.push(openCheckpointTensors(p));
    const ref = sources[0];
    const names = ref.names();
    checkSameTensors(paths, sources);
    const specs: TensorSpec[] = names.map((name) => {
      const info = ref.info(name);
      const dtype: SafeDType = isFloatDType(info.dtype) && opts.outDtype ? opts.outDtype : info.dtype;
      return { name, dtype, shape: info.shape };
    });
    const numLayers = countLayers(statDir(paths[0]), names);
    // Mapped windows: together at most twice the largest tensor in f32 (what a merge computing in f32 would hold), so
    // that the passes of a TIES merge over a tensor map its pages once; each at least 16 ranges' worth of f32 bytes.
    const largestBytes = Math.max(0, ...names.map((n) => (ref.info(n).byteLength / dtypeSize(ref.info(n).dtype)) * 4));
    const windowBytes = Math.max(16 * chunkElements * 4, Math.floor((2 * largestBytes) / paths.length));
    const ranges = (reader = new RangeReader(paths.length, chunkElements, opts.mapInputs ?? true, windowBytes));
    // What each tensor reads: every input for floating tensors, the reference's own for the copied ones.
    const order = mergeOrder(names.map((n) => ref.info(n).byteLength));
    const reads = order.map((t) => names[t]).map((n) => (isFloatDType(ref.info(n).dtype) ? sources.map((s) => s.info(n)) : [ref.info(n)]));
    const bytesTotal = reads.reduce((a, r) => a + r.reduce((b, i) => b + i.byteLength, 0), 0);
    const large = bytesTotal >= 256_000_000;
    const kernels = nativeExtras();
    if ((opts.prefetch ?? large) && kernels) {
      prefetch = new Prefetcher(reads.map((r) => r.map((i) => ({ file: i.file, offset: i.byteOffset, length: i.byteLength }))), 1_000_000_000, kernels);
    }
    // After the read-ahead has started (the disk reads while the writer sets up), and right before the try that
    // aborts it on an error: its temporary shards exist from here on.
    const writer = new ShardWriter(opts.out, specs, opts.maxShardBytes ?? 5_000_000_000, { writeBehind: opts.writeBehind ?? large });
    let bytesRead = 0;
    let rangeOut: ArrayBuffer | undefined;
    try {
      order.forEach((t, index) => {
        prefetch?.at(index);
        const name = names[t], spec = specs[t];
        const info = ref.info(name);
        if (!isFloatDType(info.dtype)) {
          // Integer buffers (position ids, masks) are not merged: the reference checkpoint's are kept.
          writer.write(name, ref.read(name));
        } else {
          const ctx: TensorContext = { name, shape: info.shape, layer: layerIndex(name), numLayers };
          const n = info.byteLength / dtypeSize(info.dtype);
          const scan: TensorScan = (visit, from) => ranges.scan(reads[index], n, visit, from);
          const ranged = opts.chunked?.(ctx, scan) ?? null;
          if (ranged !== null) mergeInRanges(writer, spec, n, scan, ranged, (rangeOut ??= new ArrayBuffer(4 * chunkElements)));
          else writer.write(name, mergeWhole(opts.merge, ctx, sources, spec));
        }
        bytesRead += reads[index].reduce((a, i) => a + i.byteLength, 0);
        opts.onProgress?.({ index: index + 1, total: names.length, name, bytesRead, bytesTotal });
      });
      writer.finish();
    } catch (e) {
      writer.abort();
      throw e;
    }
    copyModelFiles(opts.filesFrom ?? paths[0], opts.out, opts.outDtype);
    return {
      tensors: names.length,
      bytesRead,
      bytesWritten: writer.totalBytes,
      seconds: (performance.now() - started) / 1000,
      largestTensorF32Bytes: largestBytes,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      files: writer.files,
    };
  } finally {
    backend().setNumThreads(threads);
    prefetch?.close();
    reader?.close();
    for (const s of sources) s.close();
  }
}

/** A tensor merged from its inputs' whole f32 copies, in the output dtype. */
function mergeWhole(merge: TensorMerger, ctx: TensorContext, sources: readonly TensorSource[], spec: TensorSpec): SafeArray {
  // Convert each input as soon as it is read, so only one raw buffer is alive besides the f32 copies.
  const f32 = sources.map((s) => toF32(s.read(ctx.name), s.info(ctx.name).dtype as FloatDType));
  const merged = merge(ctx, f32);
  if (merged.length !== f32[0].length) throw new Error(`merge: the merged ${ctx.name} has ${merged.length} elements, expected ${f32[0].length}`);
  return fromF32(merged, spec.dtype as FloatDType);
}

/**
 * Merges a tensor range by range, each range of the output computed straight into the writer's write-behind slot
 * where it has one (writing it then copies nothing), else into `buffer` (room for a range in f32, reused from tensor
 * to tensor: fresh output arrays per tensor made V8 collect garbage every few tensors).
 */
function mergeInRanges(writer: ShardWriter, spec: TensorSpec, n: number, scan: TensorScan, merge: ChunkMerge, buffer: ArrayBuffer): void {
  const dtype = spec.dtype as FloatDType;
  const size = dtypeSize(dtype);
  const longest = Math.min(n, buffer.byteLength / 4);
  // Merges write F32, BF16 and F16 ranges directly; F64 ones are widened from F32.
  const view = <B extends ArrayBufferLike>(b: B, at: number, length: number) => (dtype === 'F32' || dtype === 'F64' ? new Float32Array(b, at, length) : new Uint16Array(b, at, length));
  const out = view(buffer, 0, longest);
  const wide = dtype === 'F64' ? new Float64Array(longest) : null;
  if (n === 0) return writer.write(spec.name, wide ?? out);
  scan((chunks, offset, length) => {
    const slot = wide ? null : writer.target(length * size);
    const o = slot === null ? out.subarray(0, length) : view(slot.buffer, slot.byteOffset, length);
    merge(chunks, offset, { data: o, dtype: dtype === 'F64' ? CastDType.F32 : CAST[dtype] });
    const w = wide?.subarray(0, length);
    w?.set(o);
    writer.writeRange(spec.name, offset * size, w ?? o);
  });
}

const CAST: Record<'F32' | 'BF16' | 'F16', CastDType> = { F32: CastDType.F32, BF16: CastDType.BF16, F16: CastDType.F16 };

/**
 * Element ranges of tensors, one input at a time: when asked to and the backend can map files, ranges are views into
 * a window per input (reserved once) into which a stretch of the tensor's bytes is mapped (the page cache read in
 * place), replaced when a range falls outside it, so the mapped pages the process holds, which count in its RSS, are
 * one window per input; else positional reads into one reusable buffer per input (file descriptors cached).
 */
class RangeReader {
  private readonly fds = new Map<string, number>();
  private readonly raw: ArrayBuffer[];
  private readonly wide: Float32Array[];
  private readonly mapper: ReturnType<typeof nativeExtras>;
  /** Per input, its window (reserved at its first range). */
  private readonly windows: (ArrayBuffer | null)[];
  /**
   * Per input, what its window holds: the tensor, where the stretch starts in the tensor's bytes, its length, and
   * where it starts in the window.
   */
  private readonly mapped: ({ info: TensorInfo; start: number; length: number; at: number } | null)[];

  /** `windowBytes`: the most bytes of a tensor each input keeps mapped (rounded down to whole ranges, at least one). */
  constructor(inputs: number, readonly chunkElements: number, map: boolean, private readonly windowBytes: number) {
    this.mapper = map ? nativeExtras() : null;
    this.raw = Array.from({ length: inputs }, () => new ArrayBuffer(0));
    this.wide = Array.from({ length: inputs }, () => new Float32Array(0));
    this.windows = Array.from({ length: inputs }, () => null);
    this.mapped = Array.from({ length: inputs }, () => null);
  }

  /**
   * One pass over `n` elements of the tensors `infos` (one per input), `chunkElements` at a time from element `from`
   * (a multiple of chunkElements), until `visit` returns false.
   */
  scan(infos: readonly TensorInfo[], n: number, visit: ChunkVisitor, from = 0): void {
    if (from % this.chunkElements !== 0) throw new Error(`merge: a pass starts at a range, not at element ${from}`);
    for (let offset = from; offset < n; offset += this.chunkElements) {
      const length = Math.min(this.chunkElements, n - offset);
      if (visit(infos.map((info, i) => this.read(i, info, offset, length)), offset, length) === false) return;
    }
  }

  /** Bytes [offset, offset + bytes) of input `input`'s tensor `info`, as a buffer and the byte offset in it. */
  private bytes(input: number, info: TensorInfo, offset: number, bytes: number): [ArrayBuffer, number] {
    if (this.mapper) {
      // Room for the window's stretch, whole ranges of the widest dtype, and the page below its start.
      const window = (this.windows[input] ??= this.mapper.reserveWindow(Math.max(this.windowBytes, 8 * this.chunkElements) + 65536));
      let m = this.mapped[input];
      if (m?.info !== info || offset < m.start || offset + bytes > m.start + m.length) {
        const range = this.chunkElements * dtypeSize(info.dtype);
        const length = Math.min(info.byteLength - offset, Math.max(1, Math.floor(this.windowBytes / range)) * range);
        this.mapped[input] = null; // the window's old stretch is gone even when mapping the new one fails
        const at = this.mapper.mapWindow(window, info.file, info.byteOffset + offset, length);
        m = this.mapped[input] = { info, start: offset, length, at };
      }
      return [window, m.at + offset - m.start];
    }
    if (this.raw[input].byteLength < bytes) this.raw[input] = new ArrayBuffer(this.chunkElements * dtypeSize(info.dtype));
    const dst = new Uint8Array(this.raw[input], 0, bytes);
    let fd = this.fds.get(info.file);
    if (fd === undefined) this.fds.set(info.file, (fd = openSync(info.file, 'r')));
    for (let done = 0; done < bytes; ) {
      const got = readSync(fd, dst, done, bytes - done, info.byteOffset + offset + done);
      if (got === 0) throw new Error(`merge: ${info.file} ends inside tensor ${JSON.stringify(info.name)} — the file is truncated`);
      done += got;
    }
    return [this.raw[input], 0];
  }

  private read(input: number, info: TensorInfo, offset: number, length: number): TypedRange {
    const size = dtypeSize(info.dtype);
    const [buffer, at] = this.bytes(input, info, offset * size, length * size);
    switch (info.dtype) {
      case 'F32':
      case 'BF16':
      case 'F16': {
        const View = info.dtype === 'F32' ? Float32Array : Uint16Array;
        return { data: new View(buffer, at, length), dtype: CAST[info.dtype] };
      }
      case 'F64': {
        if (this.wide[input].length < length) this.wide[input] = new Float32Array(this.chunkElements);
        const f32 = this.wide[input].subarray(0, length);
        f32.set(new Float64Array(buffer, at, length));
        return { data: f32, dtype: CastDType.F32 };
      }
      default:
        throw new Error(`merge: tensor ${JSON.stringify(info.name)} of ${info.file} is ${info.dtype}, which is not merged in ranges`);
    }
  }

  close(): void {
    for (const w of this.windows) if (w) this.mapper?.unmap(w);
    this.windows.fill(null);
    this.mapped.fill(null);
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * Throws unless the output folder is none of the inputs' folders (a checkpoint's own, or the one holding a
 * .safetensors file or shard index): writing there would replace or remove the files the merge reads.
 */
function checkOutputApart(out: string, inputs: readonly string[]): void {
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p));
  const target = real(out);
  for (const p of inputs) {
    const folder = existsSync(p) && statSync(p).isDirectory() ? p : dirname(p);
    if (real(folder) === target) throw new Error(`merge: the output folder ${out} holds the input ${p}: write the merge to another folder`);
  }
}

function statDir(path: string): string | null {
  return statSync(path).isDirectory() ? path : null;
}

/** Throws, naming the tensor and the checkpoint, unless every checkpoint holds the same tensors with the same shapes. */
function checkSameTensors(paths: readonly string[], sources: readonly TensorSource[]): void {
  const ref = sources[0];
  const names = new Set(ref.names());
  sources.forEach((s, i) => {
    if (i === 0) return;
    for (const n of s.names()) if (!names.has(n)) throw new Error(`merge: ${paths[i]} has tensor ${JSON.stringify(n)}, which ${paths[0]} lacks — the checkpoints do not share an architecture`);
    for (const n of names) {
      if (!s.has(n)) throw new Error(`merge: ${paths[i]} lacks tensor ${JSON.stringify(n)} of ${paths[0]} — the checkpoints do not share an architecture`);
      const a = ref.info(n).shape, b = s.info(n).shape;
      if (a.length !== b.length || a.some((d, k) => d !== b[k])) {
        throw new Error(`merge: tensor ${JSON.stringify(n)} is [${a}] in ${paths[0]} but [${b}] in ${paths[i]}`);
      }
    }
  });
}

// Weights in any format, and their indexes; a .bin only under a weights name (tokenizers ship .bin files too, e.g.
// llama2.c's tok512.bin).
const WEIGHT_FILE = /\.(safetensors|pt|pth|ckpt|h5|msgpack|gguf)$|^(pytorch_model|model|adapter_model)\b.*\.bin$|^(model\.safetensors|pytorch_model\.bin)\.index\.json$/;

/** Copies the base folder's non-weight files (config, tokenizer, generation config, …); sets config.json's torch_dtype. */
function copyModelFiles(base: string, out: string, outDtype: FloatDType | undefined): void {
  if (!statSync(base).isDirectory()) return;
  for (const f of readdirSync(base)) {
    const src = join(base, f);
    if (WEIGHT_FILE.test(f) || !statSync(src).isFile()) continue;
    copyFileSync(src, join(out, f));
  }
  const cfgPath = join(out, 'config.json');
  if (outDtype && existsSync(cfgPath)) {
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    cfg.torch_dtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' }[outDtype];
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
  }
}
