/**
 * Out-of-core full-model merging: the checkpoints (single-file or sharded safetensors) are read tensor by tensor,
 * each output tensor is merged in f32 and written straight to its place in the output shards (see ShardWriter),
 * so memory holds the inputs of one tensor at a time — (models + base) f32 copies of the largest tensor, plus
 * the raw read buffer — whatever the model size. Files other than weights (config.json, tokenizer, …) are copied
 * from the base.
 */
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpointTensors } from '../io/sharded.js';
import { dtypeSize, type SafeDType, type TensorSource } from '../io/safetensors.js';
import { fromF32, isFloatDType, toF32, type FloatDType } from './dtype.js';
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

/** Merges whole checkpoints tensor by tensor into `opts.out`; see the module comment. */
export function mergeCheckpoints(opts: StreamMergeOptions): MergeReport {
  const started = performance.now();
  const paths = opts.inputs;
  if (paths.length === 0) throw new Error('merge: no checkpoints to merge');
  const sources: TensorSource[] = [];
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
    const writer = new ShardWriter(opts.out, specs, opts.maxShardBytes ?? 5_000_000_000);
    const numLayers = countLayers(statDir(paths[0]), names);
    const bytesTotal = names.reduce((a, n) => a + sources.reduce((b, s) => b + s.info(n).byteLength, 0), 0);
    let bytesRead = 0;
    let largest = 0;
    try {
      names.forEach((name, index) => {
        const info = ref.info(name);
        const spec = specs[index];
        largest = Math.max(largest, (info.byteLength / dtypeSize(info.dtype)) * 4);
        if (!isFloatDType(info.dtype)) {
          // Integer buffers (position ids, masks) are not merged: the reference checkpoint's are kept.
          writer.write(name, ref.read(name));
          bytesRead += info.byteLength;
        } else {
          // Convert each input as soon as it is read, so only one raw buffer is alive besides the f32 copies.
          const f32 = sources.map((s) => {
            const i = s.info(name);
            bytesRead += i.byteLength;
            return toF32(s.read(name), i.dtype as FloatDType);
          });
          const ctx: TensorContext = { name, shape: info.shape, layer: layerIndex(name), numLayers };
          const merged = opts.merge(ctx, f32);
          if (merged.length !== f32[0].length) throw new Error(`merge: the merged ${name} has ${merged.length} elements, expected ${f32[0].length}`);
          writer.write(name, fromF32(merged, spec.dtype as FloatDType));
        }
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
      largestTensorF32Bytes: largest,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      files: writer.files,
    };
  } finally {
    for (const s of sources) s.close();
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

const WEIGHT_FILE = /(\.safetensors|\.bin|\.pt|\.pth|\.ckpt|\.h5|\.msgpack|\.gguf)$|^model\.safetensors\.index\.json$|^pytorch_model\.bin\.index\.json$/;

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
