/**
 * An out-of-core safetensors writer: the output's tensor names, dtypes and shapes are known before any data, so
 * the shard layout and every header are fixed up front and each tensor is written at its final offset the moment
 * it is produced. Nothing is buffered: memory is one tensor (plus the write-behind's slots), whatever the shard
 * size. Each shard is written to a temporary file, created with its header up front (written behind, a native thread
 * then allocates its blocks before the writes reach them: native/preallocate.cc), and made durable (fsync) once all
 * its tensors are in; when every shard is, they are renamed into place together and the index (when there are several
 * shards) is written last, so a merge that stops before its end leaves the folder's previous checkpoint as it was
 * rather than mixed with its own. One shard is saved as `model.safetensors`, several as
 * `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`, as transformers does.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statfsSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { dtypeSize, SafetensorsError, writeFileAtomic, type SafeArray, type SafeDType } from '../io/safetensors.js';
import { groupShards, removeOtherCheckpoints, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, shardIndexJson, shardName } from '../io/sharded.js';
import { nativeExtras } from '../engine/index.js';
import type { NativeKernels, PreallocationHandle } from '../engine/backend/native.js';
import { WriteBehind } from './write-behind.js';

/** One output tensor's declaration. */
export interface TensorSpec {
  name: string;
  dtype: SafeDType;
  shape: readonly number[];
}

interface Placement {
  shard: number;
  /** Absolute byte offset of the tensor's data in its shard file. */
  offset: number;
  bytes: number;
}

interface Shard {
  file: string;
  tmp: string;
  /** Its open temporary file when written directly (not behind), else −1. */
  fd: number;
  /** The file's final size: header and data. */
  bytes: number;
  pending: number;
  headerBytes: Uint8Array;
  names: string[];
}

const IO_CHUNK = 1 << 30;

/**
 * A temporary file of a checkpoint being written: a shard's (its name, then the writing process's id) or the index's
 * (writeFileAtomic's: the id, then a random suffix).
 */
const TEMPORARY = /^model(?:-\d{5}-of-\d{5})?\.safetensors(?:\.index\.json)?\.tmp-(\d+)(?:-[0-9a-f]+)?$/;

/**
 * Removes the temporary shards in `dir` of writers whose process is gone (a merge killed midway leaves them, and they
 * would count against the space the next one needs); those of running processes are left alone.
 */
function removeStaleShards(dir: string): void {
  for (const f of readdirSync(dir)) {
    const pid = Number(TEMPORARY.exec(f)?.[1]);
    if (pid > 0 && pid !== process.pid && !processExists(pid)) unlinkSync(join(dir, f));
  }
}

/** Whether process `pid` runs (signal 0 checks without sending; EPERM means it runs as another user). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What {@link checkFreeSpace} asks of a folder's file system (node:fs's statfsSync by default). */
export type FreeSpaceProbe = (dir: string) => { bavail: number; bsize: number };

/**
 * Throws, naming the folder and both sizes, when the file system holding `dir` has fewer than `bytes` free for this
 * user, so that a long merge fails before it starts rather than near its end. Where the file system cannot say, it
 * does not check (a write that runs out of space still reports it).
 */
export function checkFreeSpace(dir: string, bytes: number, probe: FreeSpaceProbe = statfsSync): void {
  let free: number;
  try {
    const s = probe(dir);
    free = s.bavail * s.bsize;
  } catch {
    return;
  }
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  if (free < bytes) throw new Error(`merge: the output in ${dir} needs ${gb(bytes)}, but its file system has ${gb(free)} free: free some space or write the output elsewhere (nothing was written)`);
}

/** Writes a checkpoint tensor by tensor, in any order, into pre-planned shards of at most `maxShardBytes` data bytes. */
export class ShardWriter {
  private readonly place = new Map<string, Placement>();
  private readonly shards: Shard[] = [];
  private readonly written = new Set<string>();
  /** Bytes written so far of tensors written in ranges and not yet complete. */
  private readonly partial = new Map<string, number>();
  private readonly specs: Map<string, TensorSpec>;
  /** Sum of all tensors' data bytes. */
  readonly totalBytes: number;

  /** Where data writes and shard closes go when they are written behind (see WriteBehind), else null. */
  private readonly behind: WriteBehind | null;
  /** The running preallocation of the shards' blocks, if any. */
  private readonly preallocating: { kernels: NativeKernels; handle: PreallocationHandle } | null;

  /**
   * Plans the shards of `specs` (at most `maxShardBytes` data bytes each) in `dir`. With `writeBehind`, writes and
   * each shard's fsync and close run on a worker thread while the caller goes on; {@link ShardWriter.finish} waits
   * for them.
   */
  constructor(
    readonly dir: string,
    specs: readonly TensorSpec[],
    maxShardBytes: number,
    { metadata = { format: 'pt' }, writeBehind = false }: { metadata?: Record<string, string>; writeBehind?: boolean } = {},
  ) {
    if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) throw new Error(`ShardWriter: maxShardBytes must be a positive integer, got ${maxShardBytes}`);
    const groups = groupShards(specs, specBytes, maxShardBytes);
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`merge: the output ${dir} is a file: give a folder to write the checkpoint into`);
    mkdirSync(dir, { recursive: true });
    groups.forEach((group, s) => {
      const file = groups.length === 1 ? SAFE_WEIGHTS_NAME : shardName(s, groups.length);
      // Data widest dtype first (so every tensor is aligned to its element size), header in the given order.
      const layout = [...group].sort((a, b) => dtypeSize(b.dtype) - dtypeSize(a.dtype));
      const begin = new Map<string, number>();
      let off = 0;
      for (const spec of layout) {
        begin.set(spec.name, off);
        off += specBytes(spec);
      }
      const parts = [`"__metadata__":${JSON.stringify(metadata)}`];
      for (const { name, dtype, shape } of group) {
        const b = begin.get(name)!;
        parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${b},${b + specBytes({ name, dtype, shape })}]}`);
      }
      const json = new TextEncoder().encode(`{${parts.join(',')}}`);
      const headerLength = Math.ceil(json.length / 8) * 8;
      const headerBytes = new Uint8Array(8 + headerLength).fill(0x20);
      new DataView(headerBytes.buffer).setBigUint64(0, BigInt(headerLength), true);
      headerBytes.set(json, 8);
      for (const spec of group) {
        if (this.place.has(spec.name)) throw new SafetensorsError(join(dir, file), spec.name, 'duplicate tensor name');
        this.place.set(spec.name, { shard: s, offset: headerBytes.length + begin.get(spec.name)!, bytes: specBytes(spec) });
      }
      this.shards.push({ file, tmp: join(dir, `${file}.tmp-${process.pid}`), fd: -1, bytes: headerBytes.length + off, pending: group.length, headerBytes, names: group.map((g) => g.name) });
    });
    this.totalBytes = specs.reduce((a, s) => a + specBytes(s), 0);
    this.specs = new Map(specs.map((s) => [s.name, s]));
    removeStaleShards(dir);
    checkFreeSpace(dir, this.shards.reduce((a, s) => a + s.bytes, 0));
    this.createShards(writeBehind);
    this.behind = writeBehind ? new WriteBehind() : null;
    // Written behind, the shards' blocks are allocated on a native thread before the writes reach them (see
    // native/preallocate.cc); written directly (small checkpoints), the writes allocate as they go.
    const kernels = writeBehind ? nativeExtras() : null;
    this.preallocating = kernels && { kernels, handle: kernels.preallocateStart(this.shards.map((s) => s.tmp), Float64Array.from(this.shards, (s) => s.bytes)) };
  }

  /**
   * Creates every shard's temporary file with its header; written directly, each stays open. On an error, the files
   * created so far are removed.
   */
  private createShards(writeBehind: boolean): void {
    try {
      for (const s of this.shards) {
        s.fd = openSync(s.tmp, 'w');
        writeSync(s.fd, s.headerBytes, 0, s.headerBytes.length, 0);
        if (writeBehind) {
          closeSync(s.fd);
          s.fd = -1;
        }
      }
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Output file names, in order. */
  get files(): string[] {
    return this.shards.map((s) => s.file);
  }

  /** Writes `name`'s data (its declared dtype and element count); closes its shard when it was the last one. */
  write(name: string, data: SafeArray): void {
    const p = this.placement(name);
    if (data.byteLength !== p.bytes) throw new Error(`ShardWriter: tensor ${JSON.stringify(name)} ([${this.specs.get(name)!.shape}] ${this.specs.get(name)!.dtype}) needs ${p.bytes} bytes, got ${data.byteLength}`);
    this.writeRange(name, 0, data);
  }

  /**
   * Writes part of `name`'s data at byte `offset` of the tensor; the tensor counts as written (and its shard may
   * close) once as many bytes as it holds have been written. Ranges must not overlap.
   */
  writeRange(name: string, offset: number, data: ArrayBufferView): void {
    const p = this.placement(name);
    const done = this.partial.get(name) ?? 0;
    if (offset < 0 || offset + data.byteLength > p.bytes || done + data.byteLength > p.bytes) {
      throw new Error(`ShardWriter: tensor ${JSON.stringify(name)} holds ${p.bytes} bytes; writing ${data.byteLength} at ${offset} (${done} already written) overflows it`);
    }
    const shard = this.shards[p.shard];
    this.writeAt(shard, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), p.offset + offset);
    this.partial.set(name, done + data.byteLength);
    if (done + data.byteLength < p.bytes) return;
    this.partial.delete(name);
    this.written.add(name);
    if (--shard.pending === 0) this.closeShard(shard);
  }

  /**
   * Where to compute `bytes` bytes of output that {@link ShardWriter.writeRange} will then write without copying: a
   * slot of the write-behind ring when writing behind and they fit one, else null (compute into a buffer of your own).
   * Write it before asking for the next one.
   */
  target(bytes: number): Uint8Array | null {
    return this.behind && bytes <= this.behind.slotBytes ? this.behind.slot().subarray(0, bytes) : null;
  }

  private placement(name: string): Placement {
    const p = this.place.get(name);
    if (p === undefined) throw new Error(`ShardWriter: tensor ${JSON.stringify(name)} was not declared`);
    if (this.written.has(name)) throw new Error(`ShardWriter: tensor ${JSON.stringify(name)} written twice`);
    return p;
  }

  /** Writes `bytes` at `position` of a shard's temporary file. */
  private writeAt(shard: Shard, bytes: Uint8Array, position: number): void {
    if (this.behind) return this.behind.write(shard.tmp, bytes, position);
    for (let done = 0; done < bytes.length; ) done += writeSync(shard.fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done), position + done);
  }

  private closeShard(shard: Shard): void {
    if (this.behind) return this.behind.close(shard.tmp);
    fsyncSync(shard.fd);
    closeSync(shard.fd);
    shard.fd = -1;
  }

  /**
   * Checks that every tensor was written, closes an empty checkpoint's shard, waits until every shard is on disk, then
   * renames them into place and writes the index (several shards; any earlier index is removed before the renames),
   * and removes what an earlier checkpoint in the folder left beside them.
   */
  finish(): void {
    const missing = [...this.place.keys()].filter((n) => !this.written.has(n));
    if (missing.length) throw new Error(`ShardWriter: ${missing.length} tensors never written, e.g. ${JSON.stringify(missing[0])}`);
    for (const s of this.shards) if (s.pending === 0 && s.names.length === 0) this.closeShard(s);
    this.stopPreallocating();
    if (this.behind) {
      this.behind.drain();
      this.behind.stop();
    }
    const index = join(this.dir, SAFE_WEIGHTS_INDEX_NAME), sharded = this.shards.length > 1;
    if (sharded) rmSync(index, { force: true });
    for (const s of this.shards) renameSync(s.tmp, join(this.dir, s.file));
    if (sharded) {
      const weightMap: Record<string, string> = {};
      for (const s of this.shards) for (const n of s.names) weightMap[n] = s.file;
      const json = shardIndexJson(this.totalBytes, weightMap);
      writeFileAtomic(index, (fd) => writeFileSync(fd, json));
    }
    removeOtherCheckpoints(this.dir, [...this.files, ...(sharded ? [SAFE_WEIGHTS_INDEX_NAME] : [])]);
  }

  /** Closes and removes the temporary shard files (after an error): nothing of this output is left. */
  abort(): void {
    // The worker closes the files it still has open (its own error, if any, is moot now).
    this.stopPreallocating();
    this.behind?.stop();
    for (const s of this.shards) {
      if (s.fd >= 0) closeSync(s.fd);
      s.fd = -1;
      try {
        unlinkSync(s.tmp);
      } catch {
        // never created, or already renamed into place
      }
    }
  }

  /** Stops the preallocation, if any, and waits for its thread. */
  private stopPreallocating(): void {
    this.preallocating?.kernels.preallocateStop(this.preallocating.handle);
  }
}

function specBytes(spec: TensorSpec): number {
  return spec.shape.reduce((a, d) => a * d, 1) * dtypeSize(spec.dtype);
}
