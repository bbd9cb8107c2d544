// Hugging Face checkpoints as one tensor lookup: a single `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}).

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import {
  SafetensorsError,
  SafetensorsFile,
  tensorList,
  unknownTensorError,
  writeFileAtomic,
  writeSafetensors,
  type SafeArray,
  type TensorEntries,
  type TensorInfo,
  type TensorSource,
} from './safetensors.js';

/** The single-file checkpoint name. */
export const SAFE_WEIGHTS_NAME = 'model.safetensors';
/** The shard index name. */
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** The name of shard `i` (from 0) of `count`: `model-0000(i+1)-of-0000count.safetensors`, as transformers names them. */
export function shardName(i: number, count: number): string {
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Items grouped into shards in order, greedily: each shard takes items while their bytes stay within `maxShardBytes`,
 * and an item larger than the limit gets a shard of its own. At least one (possibly empty) shard.
 */
export function groupShards<T>(items: readonly T[], bytes: (item: T) => number, maxShardBytes: number): T[][] {
  const groups: T[][] = [[]];
  let filled = 0;
  for (const item of items) {
    const size = bytes(item);
    if (filled + size > maxShardBytes && groups[groups.length - 1].length > 0) {
      groups.push([]);
      filled = 0;
    }
    groups[groups.length - 1].push(item);
    filled += size;
  }
  return groups;
}

/** The text of a shard index: `total_size` and each tensor's shard. */
export function shardIndexJson(totalSize: number, weightMap: Record<string, string>): string {
  return JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
}

/** A sharded checkpoint: every tensor of the index's weight_map, read from its shard. */
export class ShardedCheckpoint implements TensorSource {
  private constructor(
    /** The index file's path. */
    readonly path: string,
    /** The index's `metadata` object (e.g. `total_size`). */
    readonly metadata: Record<string, unknown>,
    /** Every shard, open, in first-mention order. */
    readonly shards: SafetensorsFile[],
    private readonly shardOf: Map<string, SafetensorsFile>,
  ) {}

  /**
   * Opens the index at `indexPath` and every shard it names, checking that each shard exists (inside the
   * index's folder) and holds every tensor mapped to it.
   */
  static open(indexPath: string): ShardedCheckpoint {
    const fail = (tensor: string | undefined, problem: string) => new SafetensorsError(indexPath, tensor, problem);
    let index: unknown;
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw fail(undefined, `cannot read the shard index: ${(e as Error).message}`);
    }
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!isObject(index) || !isObject(index.weight_map)) throw fail(undefined, 'the shard index must be an object with a "weight_map" object');
    const metadata = index.metadata ?? {};
    if (!isObject(metadata)) throw fail(undefined, 'the shard index "metadata" must be an object');

    const dir = resolve(indexPath, '..');
    const byFile = new Map<string, SafetensorsFile>();
    const shardOf = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shard] of Object.entries(index.weight_map)) {
        if (typeof shard !== 'string') throw fail(name, `weight_map value must be a shard file name, got ${JSON.stringify(shard)}`);
        const path = resolve(dir, shard);
        if (!path.startsWith(dir + sep)) throw fail(name, `shard ${JSON.stringify(shard)} lies outside the checkpoint folder ${dir}`);
        let file = byFile.get(path);
        if (file === undefined) {
          if (!existsSync(path)) {
            throw fail(name, `mapped to shard ${JSON.stringify(shard)}, which does not exist in ${dir} — the checkpoint is incomplete; download the missing shard`);
          }
          file = SafetensorsFile.open(path);
          byFile.set(path, file);
        }
        shardOf.set(name, file);
      }
      for (const [name, file] of shardOf) {
        if (file.has(name)) continue;
        const holder = [...byFile.values()].find((f) => f.has(name));
        const where = holder ? `it is in ${JSON.stringify(holder.path)}` : 'no shard holds it';
        throw fail(name, `mapped to shard ${JSON.stringify(file.path)}, which does not hold it (${where}) — the index does not match the shards; re-download or re-save the checkpoint`);
      }
    } catch (e) {
      for (const f of byFile.values()) f.close();
      throw e;
    }
    return new ShardedCheckpoint(indexPath, metadata, [...byFile.values()], shardOf);
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  private shard(name: string): SafetensorsFile {
    const file = this.shardOf.get(name);
    if (file === undefined) throw unknownTensorError(this.path, name, this.names());
    return file;
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  read(name: string): SafeArray {
    return this.shard(name).read(name);
  }

  close(): void {
    for (const f of this.shards) f.close();
  }
}

/**
 * Opens a checkpoint's tensors: `path` is a folder holding `model.safetensors` (preferred, as transformers does)
 * or `model.safetensors.index.json`, or directly a `.safetensors` file or a shard index `.json`.
 */
export function openCheckpointTensors(path: string): TensorSource {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new SafetensorsError(path, undefined, `cannot open the checkpoint: ${(e as Error).message}`, { cause: e });
  }
  if (!isDir) return path.endsWith('.json') ? ShardedCheckpoint.open(path) : SafetensorsFile.open(path);
  if (existsSync(join(path, SAFE_WEIGHTS_NAME))) return SafetensorsFile.open(join(path, SAFE_WEIGHTS_NAME));
  if (existsSync(join(path, SAFE_WEIGHTS_INDEX_NAME))) return ShardedCheckpoint.open(join(path, SAFE_WEIGHTS_INDEX_NAME));
  const found = readdirSync(path).filter((f) => /\.(safetensors|json|bin|pt|pth)$/.test(f));
  throw new SafetensorsError(
    path,
    undefined,
    `no ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME} in this folder (it holds: ${found.length ? found.join(', ') : 'no checkpoint files'}) — save or convert the checkpoint to safetensors`,
  );
}

/** What {@link writeShardedSafetensors} wrote. */
export interface ShardedWrite {
  /** The index path. */
  index: string;
  /** Shard file names, in order. */
  shards: string[];
  /** Sum of all tensors' data bytes (the index's metadata.total_size). */
  totalSize: number;
}

/**
 * Writes `tensors` into `dir` as `model-0000i-of-0000N.safetensors` shards of at most `maxShardBytes` data bytes
 * each (filled greedily in the given order; a tensor larger than the limit gets a shard of its own) plus
 * `model.safetensors.index.json`, every file atomically and the index last. `metadata` goes into every shard.
 * Afterwards it removes a `model.safetensors` and shards of another save left in `dir`, so the folder holds one checkpoint.
 */
export function writeShardedSafetensors(dir: string, tensors: TensorEntries, maxShardBytes: number, metadata?: Record<string, string>): ShardedWrite {
  const indexPath = join(dir, SAFE_WEIGHTS_INDEX_NAME);
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new SafetensorsError(indexPath, undefined, `maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }
  const list = tensorList(indexPath, tensors);
  const groups = groupShards(list, ([, t]) => t.data.byteLength, maxShardBytes);
  mkdirSync(dir, { recursive: true });
  const shards = groups.map((_, i) => shardName(i, groups.length));
  const weightMap: Record<string, string> = {};
  groups.forEach((group, i) => {
    writeSafetensors(join(dir, shards[i]), group, metadata);
    for (const [name] of group) weightMap[name] = shards[i];
  });
  const totalSize = list.reduce((a, [, t]) => a + t.data.byteLength, 0);
  const json = shardIndexJson(totalSize, weightMap);
  writeFileAtomic(indexPath, (fd) => writeFileSync(fd, json));
  removeOtherCheckpoints(dir, [...shards, SAFE_WEIGHTS_INDEX_NAME]);
  return { index: indexPath, shards, totalSize };
}

/**
 * Removes the checkpoint files in `dir` (`model.safetensors`, its shards, their index) other than `keep`: what an
 * earlier save left beside a new one, so that the folder holds one checkpoint.
 */
export function removeOtherCheckpoints(dir: string, keep: readonly string[]): void {
  for (const f of readdirSync(dir)) {
    if ((f === SAFE_WEIGHTS_NAME || f === SAFE_WEIGHTS_INDEX_NAME || SHARD_NAME.test(f)) && !keep.includes(f)) unlinkSync(join(dir, f));
  }
}
