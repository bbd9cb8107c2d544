// The safetensors file format: read lazily (header first, each tensor on demand by positional read) and write
// atomically. Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 N, then N bytes
// of UTF-8 JSON `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}`,
// then the data section; offsets are relative to the data section's start, values are little-endian.
// This layer returns raw typed arrays (f16/bf16 as raw bits) and knows nothing about the tensor engine.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

/** Element size and typed-array class of every supported dtype (f16/bf16 travel as raw bits). */
const DTYPES = {
  F64: { size: 8, array: Float64Array },
  F32: { size: 4, array: Float32Array },
  F16: { size: 2, array: Uint16Array },
  BF16: { size: 2, array: Uint16Array },
  I64: { size: 8, array: BigInt64Array },
  I32: { size: 4, array: Int32Array },
  I16: { size: 2, array: Int16Array },
  I8: { size: 1, array: Int8Array },
  U64: { size: 8, array: BigUint64Array },
  U32: { size: 4, array: Uint32Array },
  U16: { size: 2, array: Uint16Array },
  U8: { size: 1, array: Uint8Array },
  BOOL: { size: 1, array: Uint8Array },
} as const;

/** A safetensors dtype this library reads and writes. (F8_* and other exotic dtypes are rejected.) */
export type SafeDType = keyof typeof DTYPES;
/** The typed array holding the elements of dtype `D`. */
export type SafeArrayOf<D extends SafeDType> = InstanceType<(typeof DTYPES)[D]['array']>;
/** The typed array of any supported dtype. */
export type SafeArray = SafeArrayOf<SafeDType>;

/** Every supported dtype name. */
export const SAFE_DTYPES = Object.keys(DTYPES) as SafeDType[];

/** Whether `s` names a supported dtype. */
export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === 'string' && Object.hasOwn(DTYPES, s);
}

/** Bytes per element of `dtype`. */
export function dtypeSize(dtype: SafeDType): number {
  return DTYPES[dtype].size;
}

/** Where one tensor lives: `byteOffset` is absolute in `file`. */
export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  byteOffset: number;
  byteLength: number;
  file: string;
}

/** A tensor to write: `data` is the typed array of `dtype` with exactly numel(shape) elements. */
export interface TensorData {
  dtype: SafeDType;
  shape: readonly number[];
  data: SafeArray;
}

/** Tensors to write, in order: an object (insertion order) or a list of [name, tensor] pairs. */
export type TensorEntries = Record<string, TensorData> | Iterable<readonly [string, TensorData]>;

/** Name lookup over one or more checkpoint files (a single safetensors file or a sharded checkpoint). */
export interface TensorSource {
  /** Tensor names in file (or index) order. */
  names(): string[];
  has(name: string): boolean;
  /** Where `name` lives; throws naming a few available names when it is unknown. */
  info(name: string): TensorInfo;
  /** A fresh copy of `name`'s data that the caller owns. */
  read(name: string): SafeArray;
  close(): void;
}

/** Any safetensors read/write failure; the message names the file, the tensor (if any) and the problem. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`safetensors ${file}${tensor === undefined ? '' : `, tensor ${JSON.stringify(tensor)}`}: ${problem}`, options);
  }
}

/** The safetensors reference implementation refuses headers larger than this. */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest chunk handed to one readSync/writeSync call (they take 32-bit lengths). */
const IO_CHUNK = 1 << 30;

/** The error for an unknown tensor name, listing a few of the available ones. */
export function unknownTensorError(file: string, name: string, names: readonly string[]): SafetensorsError {
  const some = names.slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
  const more = names.length > 5 ? `, … (${names.length} in all)` : '';
  return new SafetensorsError(file, name, names.length === 0 ? 'no such tensor (the file holds none)' : `no such tensor; available: ${some}${more}`);
}

function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: big-endian hosts are not supported');
}

/** Element count of a validated shape, or undefined when it is not a safe integer. */
function numelOf(shape: readonly number[]): number | undefined {
  const n = shape.reduce((a, d) => a * BigInt(d), 1n);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads `dst.length` bytes at `position`; a short read means the file is shorter than its header says. */
function readExact(file: string, fd: number, dst: Uint8Array, position: number, tensor?: string): void {
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(IO_CHUNK, dst.length - done), position + done);
    if (n === 0) {
      const size = fstatSync(fd).size;
      throw new SafetensorsError(file, tensor, `file is truncated: expected at least ${position + dst.length} bytes, found ${size} — re-download or re-save it`);
    }
    done += n;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done));
}

/**
 * Validates a parsed header: every entry has a known dtype, a shape of non-negative integers and
 * `data_offsets` [begin, end] inside the data section whose span matches numel × dtype size, and no two
 * tensors overlap. (Gaps between tensors are tolerated; the reference reader rejects them and our writer makes none.)
 */
function parseHeader(file: string, headerBytes: Uint8Array, dataStart: number, fileSize: number) {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, undefined, 'header is not valid UTF-8 — the file is corrupt or not a safetensors file');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, undefined, `header is not valid JSON (${(e as Error).message}) — the file is corrupt or not a safetensors file`);
  }
  if (!isPlainObject(json)) throw new SafetensorsError(file, undefined, 'header must be a JSON object of tensor entries — the file is corrupt or not a safetensors file');

  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const infos: TensorInfo[] = [];
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (entry === null) continue;
      if (!isPlainObject(entry)) throw new SafetensorsError(file, undefined, '"__metadata__" must be an object of string values');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, undefined, `"__metadata__" value for ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const bad = (problem: string) => new SafetensorsError(file, name, problem);
    if (!isPlainObject(entry)) throw bad('header entry must be an object with dtype, shape and data_offsets');
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isSafeDType(dtype)) throw bad(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${SAFE_DTYPES.join(', ')})`);
    if (!isShape(shape)) throw bad(`shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`data_offsets ${JSON.stringify(offsets)} must be [begin, end], two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
    const need = shape.reduce((a, d) => a * BigInt(d), 1n) * BigInt(DTYPES[dtype].size);
    if (BigInt(end - begin) !== need) {
      throw bad(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${need} — the header is inconsistent; re-save the file`);
    }
    if (end > dataSize) {
      throw bad(`file is truncated: expected ${dataStart + end} bytes, found ${fileSize} — re-download or re-save it`);
    }
    infos.push({ name, dtype, shape, byteOffset: dataStart + begin, byteLength: end - begin, file });
    if (end > begin) spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    const [b0, e0, n0] = spans[i - 1];
    const [b1, e1, n1] = spans[i];
    if (b1 < e0) throw new SafetensorsError(file, n1, `bytes [${b1}, ${e1}) overlap tensor ${JSON.stringify(n0)} at [${b0}, ${e0}) — the file is corrupt`);
  }
  return { infos, metadata };
}

/** An open safetensors file: the header is parsed at open, tensor data is read on demand. */
export class SafetensorsFile implements TensorSource {
  private fd: number;
  private readonly byName: Map<string, TensorInfo>;

  private constructor(
    /** The path the file was opened with. */
    readonly path: string,
    fd: number,
    infos: TensorInfo[],
    /** The `__metadata__` string map ({} when absent). */
    readonly metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.byName = new Map(infos.map((i) => [i.name, i]));
  }

  /** Opens `path` and validates its header; reads only the length prefix and the header, never the data. */
  static open(path: string): SafetensorsFile {
    assertLittleEndian();
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, undefined, `cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new SafetensorsError(path, undefined, 'not a regular file');
      const size = stat.size;
      if (size < 8) throw new SafetensorsError(path, undefined, `file is ${size} bytes, too short for the 8-byte header length — truncated or not a safetensors file`);
      const prefix = new Uint8Array(8);
      readExact(path, fd, prefix, 0);
      const n = new DataView(prefix.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(path, undefined, `declared header length ${n} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit — the file is corrupt or not a safetensors file`);
      }
      if (n > BigInt(size - 8)) {
        throw new SafetensorsError(path, undefined, `file is truncated: the header alone needs ${8n + n} bytes, found ${size} — re-download or re-save it`);
      }
      const header = new Uint8Array(Number(n));
      readExact(path, fd, header, 8);
      const { infos, metadata } = parseHeader(path, header, 8 + Number(n), size);
      return new SafetensorsFile(path, fd, infos, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.byName.get(name);
    if (info === undefined) throw unknownTensorError(this.path, name, this.names());
    return info;
  }

  /** Reads `name`'s bytes with one positional read into a fresh, aligned typed array the caller owns. */
  read(name: string): SafeArray {
    const info = this.info(name);
    if (this.fd < 0) throw new SafetensorsError(this.path, name, 'file is closed');
    const buffer = new ArrayBuffer(info.byteLength);
    readExact(this.path, this.fd, new Uint8Array(buffer), info.byteOffset, name);
    return new DTYPES[info.dtype].array(buffer);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * Checks tensors to be written and returns them as an ordered list: no reserved or duplicate names, a known
 * dtype, a valid shape and a typed array of the dtype's class holding exactly numel(shape) elements.
 */
export function tensorList(file: string, tensors: TensorEntries): [string, TensorData][] {
  const list: [string, TensorData][] = Symbol.iterator in tensors ? [...(tensors as Iterable<[string, TensorData]>)] : Object.entries(tensors);
  const seen = new Set<string>();
  for (const [name, t] of list) {
    const bad = (problem: string) => new SafetensorsError(file, name, problem);
    if (name === '__metadata__') throw bad('"__metadata__" is reserved for the metadata map');
    if (seen.has(name)) throw bad('duplicate tensor name');
    seen.add(name);
    if (!isSafeDType(t.dtype)) throw bad(`unsupported dtype ${JSON.stringify(t.dtype)} (supported: ${SAFE_DTYPES.join(', ')})`);
    if (!isShape(t.shape)) throw bad(`shape ${JSON.stringify(t.shape)} must be an array of non-negative integers`);
    const { array } = DTYPES[t.dtype];
    if (!(t.data instanceof array)) throw bad(`dtype ${t.dtype} needs its data in a ${array.name}, got ${t.data?.constructor?.name ?? typeof t.data}`);
    const numel = numelOf(t.shape);
    if (numel !== t.data.length) throw bad(`shape [${t.shape}] holds ${numel ?? 'too many'} elements but the data has ${t.data.length}`);
  }
  return list;
}

/**
 * Writes `path` by writing a temporary file beside it (`path.tmp-<pid>-<random>`), fsyncing it and renaming it
 * over `path`, so readers see either the old file or the complete new one. The temporary file is removed on error.
 */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone (or never created)
    }
    throw e instanceof SafetensorsError ? e : new SafetensorsError(path, undefined, `write failed: ${(e as Error).message}`, { cause: e });
  }
  try {
    // Make the rename itself durable; not every platform can fsync a directory.
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // best effort
  }
}

/**
 * Writes a safetensors file atomically: header entries in the given order, padded with spaces to a multiple of
 * 8 bytes (as the reference implementation does) so the data section is 8-byte aligned; data packed back to back,
 * widest dtypes first, so each tensor is aligned to its element size. `metadata` becomes `__metadata__` (Hugging Face transformers expects `{ format: 'pt' }`).
 */
export function writeSafetensors(path: string, tensors: TensorEntries, metadata?: Record<string, string>): void {
  assertLittleEndian();
  const list = tensorList(path, tensors);
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(path, undefined, `metadata value for ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  // Data goes in order of element size, widest first (stable), so every tensor starts at a multiple of its
  // element size inside the 8-aligned data section, as the reference writer arranges; the header keeps the given order.
  const layout = [...list].sort((a, b) => DTYPES[b[1].dtype].size - DTYPES[a[1].dtype].size);
  const begin = new Map<string, number>();
  let offset = 0;
  for (const [name, { data }] of layout) {
    begin.set(name, offset);
    offset += data.byteLength;
  }
  for (const [name, { dtype, shape, data }] of list) {
    const b = begin.get(name)!;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${b},${b + data.byteLength}]}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, head);
    for (const [, { data }] of layout) writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  });
}
