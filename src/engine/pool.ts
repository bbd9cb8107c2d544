/**
 * Storage pool: disposed tensors return their arrays here and new tensors of the same dtype and length reuse them,
 * so a training step that repeats the same shapes allocates nothing after the first step and resident memory
 * stays flat without waiting for the garbage collector.
 */
import { allocStorage, BYTES_PER_ELEMENT, type DType, type StorageOf } from './dtype.js';

const free = new Map<string, ArrayBufferView[]>();
let pooledBytes = 0;
let freshBytes = 0;
/** Arrays beyond this many pooled bytes are left to the garbage collector instead of being kept. */
let maxPooledBytes = 2 ** 32;

/** An array of `n` elements of `dtype` with unspecified contents (a recycled one when available). */
export function acquire<D extends DType>(dtype: D, n: number): StorageOf[D] {
  const list = free.get(`${dtype}:${n}`);
  const a = list?.pop();
  if (a) {
    pooledBytes -= n * BYTES_PER_ELEMENT[dtype];
    return a as StorageOf[D];
  }
  freshBytes += n * BYTES_PER_ELEMENT[dtype];
  return allocStorage(dtype, n);
}

/** Returns an array to the pool. The caller must hold no other reference to it. */
export function release(dtype: DType, a: ArrayBufferView & { length: number }): void {
  const bytes = a.length * BYTES_PER_ELEMENT[dtype];
  if (pooledBytes + bytes > maxPooledBytes) return;
  const key = `${dtype}:${a.length}`;
  let list = free.get(key);
  if (!list) free.set(key, (list = []));
  list.push(a);
  pooledBytes += bytes;
}

/** Drops every pooled array (e.g. between phases with different shapes) and sets the pool's byte cap. */
export function clearPool(maxBytes = maxPooledBytes): void {
  free.clear();
  pooledBytes = 0;
  maxPooledBytes = maxBytes;
}

/** Bytes currently held by the pool. */
export function pooledByteCount(): number {
  return pooledBytes;
}

/** Bytes allocated fresh (not recycled from the pool) since the process started: flat during a steady training loop. */
export function freshAllocatedBytes(): number {
  return freshBytes;
}
