/**
 * Tensor: a dtype, a shape and strides over a reference-counted storage array.
 *
 * Views (reshape of contiguous data, transpose/permute, narrow, expand, unsqueeze/squeeze) share storage and copy
 * nothing. Memory is explicit: `dispose()` returns the storage to the pool when its last view goes, and `tidy()`
 * disposes everything an inner function created except what it returns — so training never waits on the GC.
 */
import { backend } from './backend/index.js';
import { BYTES_PER_ELEMENT, type DType, type StorageOf } from './dtype.js';
import { acquire, release } from './pool.js';
import type { GradFn } from './autograd.js';
import { track } from './scope.js';

/** A storage array shared by a tensor and its views. */
export class StorageBox<D extends DType = DType> {
  refs = 1;
  constructor(
    public readonly dtype: D,
    public data: StorageOf[D] | null,
  ) {}

  retain(): void {
    this.refs++;
  }

  drop(): void {
    if (--this.refs === 0 && this.data) {
      release(this.dtype, this.data);
      this.data = null;
    }
  }
}

let nextId = 1;

export class Tensor<D extends DType = DType> {
  /** Unique id (useful for debugging and as a map key). */
  readonly id = nextId++;
  /** Gradient accumulated by `backward()` (always f32); only set on leaves that require grad. */
  grad: Tensor<'f32'> | null = null;
  /** The op that produced this tensor, when it was recorded for autograd. */
  gradFn: GradFn | null = null;
  /** Set by `keep()`: the enclosing `tidy()` scope does not dispose it. */
  kept = false;
  /**
   * The bf16 copy of this tensor made for a bf16 GEMM, when the tensor is an op's output (immutable): q, k and v
   * projections of the same input then share one cast. Disposed with this tensor.
   */
  bf16Copy: Tensor<'bf16'> | null = null;
  private disposed = false;

  /** @internal Use the factory functions (`zeros`, `tensor`, ...) or ops instead. */
  constructor(
    public readonly dtype: D,
    public readonly shape: readonly number[],
    public readonly strides: readonly number[],
    public readonly offset: number,
    readonly box: StorageBox<D>,
    public requiresGrad = false,
  ) {
    track(this);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * The storage array starting at this tensor's first element (a zero-copy subarray). Kernels read it with this
   * tensor's strides; for contiguous tensors it holds exactly `size` elements from index 0.
   */
  get data(): StorageOf[D] {
    const d = this.box.data;
    if (this.disposed || !d) throw new Error(`tensor ${this.describe()} was used after dispose()`);
    return (this.offset === 0 ? d : d.subarray(this.offset)) as StorageOf[D];
  }

  /** Whether the elements are laid out row-major with no gaps. */
  isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }

  /** Marks this tensor as a leaf that accumulates gradients; returns it. */
  requiresGrad_(flag = true): this {
    if (flag && this.dtype !== 'f32' && this.dtype !== 'bf16')
      throw new Error(`requiresGrad_: only floating tensors can require grad, got ${this.describe()}`);
    this.requiresGrad = flag;
    return this;
  }

  /** Releases this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.box.drop();
    this.bf16Copy?.dispose();
    this.bf16Copy = null;
  }

  /** Plain JS numbers (or bigints for i64), row-major, converting bf16/f16 to their values. */
  toArray(): number[] {
    const c = this.dtype === 'bf16' || this.dtype === 'f16' ? castTo(this, 'f32') : contiguousCopy(this);
    const out = Array.from(c.data as ArrayLike<number>, Number);
    if (c !== this) c.dispose();
    return out;
  }

  /** A contiguous typed array copy (bf16/f16 values converted to Float32Array). */
  toTyped(): StorageOf[D extends 'bf16' | 'f16' ? 'f32' : D] {
    const c = this.dtype === 'bf16' || this.dtype === 'f16' ? castTo(this, 'f32') : contiguousCopy(this);
    const out = (c.data as Float32Array).slice(0, c.size);
    if (c !== this) c.dispose();
    return out as never;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item(): tensor ${this.describe()} has ${this.size} elements, expected 1`);
    return this.toArray()[0]!;
  }

  /** A short description used in error messages: dtype and shape. */
  describe(): string {
    return `${this.dtype}[${this.shape.join(', ')}]`;
  }

  toString(): string {
    const values = this.size <= 16 ? ` ${JSON.stringify(this.toArray())}` : '';
    return `Tensor(${this.describe()}${values})`;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function checkShape(shape: readonly number[], where: string): void {
  for (const d of shape)
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${where}: invalid shape [${shape.join(', ')}]`);
}

/** A new contiguous tensor with unspecified contents (kernels overwrite it). */
export function empty<D extends DType = 'f32'>(shape: readonly number[], dtype: D = 'f32' as D): Tensor<D> {
  checkShape(shape, 'empty');
  const n = numel(shape);
  return new Tensor(dtype, [...shape], contiguousStrides(shape), 0, new StorageBox(dtype, acquire(dtype, n)));
}

/** A new tensor that views `src`'s storage (shares it, no copy). */
export function view<D extends DType>(src: Tensor<D>, shape: readonly number[], strides: readonly number[], offset: number): Tensor<D> {
  src.box.retain();
  return new Tensor(src.dtype, [...shape], [...strides], offset, src.box);
}

/** Wraps an existing typed array as a contiguous tensor without copying (the tensor now owns the array). */
export function fromStorage<D extends DType>(data: StorageOf[D], shape: readonly number[], dtype: D): Tensor<D> {
  checkShape(shape, 'fromStorage');
  const n = numel(shape);
  if (data.length !== n)
    throw new Error(`fromStorage: ${data.length} elements cannot have shape [${shape.join(', ')}] (${n} elements)`);
  return new Tensor(dtype, [...shape], contiguousStrides(shape), 0, new StorageBox(dtype, data));
}

/** A tensor from nested-free values: `tensor([1, 2, 3, 4], [2, 2])`. Copies the data. */
export function tensor<D extends 'f32' | 'i32' | 'u8' = 'f32'>(values: ArrayLike<number> | number, shape?: readonly number[], dtype: D = 'f32' as D): Tensor<D> {
  const arr = typeof values === 'number' ? [values] : values;
  const s = shape ?? (typeof values === 'number' ? [] : [arr.length]);
  const t = empty(s, dtype);
  if (t.size !== arr.length) {
    t.dispose();
    throw new Error(`tensor: ${arr.length} values cannot have shape [${s.join(', ')}]`);
  }
  (t.data as Float32Array | Int32Array | Uint8Array).set(arr);
  return t;
}

/** A tensor filled with `value`. */
export function full<D extends 'f32' | 'i32' | 'u8' = 'f32'>(shape: readonly number[], value: number, dtype: D = 'f32' as D): Tensor<D> {
  const t = empty(shape, dtype);
  if (dtype === 'f32') backend().fill(t.data as Float32Array, t.size, value);
  else (t.data as Int32Array | Uint8Array).fill(value);
  return t;
}

export function zeros<D extends 'f32' | 'i32' | 'u8' = 'f32'>(shape: readonly number[], dtype: D = 'f32' as D): Tensor<D> {
  return full(shape, 0, dtype);
}

export function ones(shape: readonly number[]): Tensor<'f32'> {
  return full(shape, 1);
}

/** `[start, start+1, ..., end-1]` as i32 (or f32). */
export function arange<D extends 'f32' | 'i32' = 'i32'>(start: number, end: number, dtype: D = 'i32' as D): Tensor<D> {
  const t = empty([Math.max(0, end - start)], dtype);
  const d = t.data as Int32Array | Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = start + i;
  return t;
}

/** A contiguous copy (no autograd; see `contiguous()` in ops for the differentiable one). */
export function contiguousCopy<D extends DType>(t: Tensor<D>): Tensor<D> {
  if (t.isContiguous()) {
    const out = empty(t.shape, t.dtype);
    (out.data as { set(a: ArrayLike<unknown>): void }).set((t.data as Float32Array).subarray(0, t.size) as never);
    return out;
  }
  const out = empty(t.shape, t.dtype);
  backend().copyStrided(t.data, [...t.strides], out.data, [...out.strides], [...t.shape]);
  return out;
}

/** Converts to another dtype (no autograd; see `cast()` in ops for the differentiable one). */
export function castTo<D extends DType>(t: Tensor, dtype: D): Tensor<D> {
  const src = t.isContiguous() ? t : contiguousCopy(t);
  const n = t.size;
  const out = empty(t.shape, dtype);
  const k = backend();
  const from = src.dtype;
  try {
    if (from === dtype) (out.data as Float32Array).set((src.data as Float32Array).subarray(0, n));
    else if (from === 'f32' && dtype === 'bf16') k.castF32ToBF16(src.data as Float32Array, out.data as Uint16Array, n);
    else if (from === 'bf16' && dtype === 'f32') k.castBF16ToF32(src.data as Uint16Array, out.data as Float32Array, n);
    else if (from === 'f16' && dtype === 'f32') k.castF16ToF32(src.data as Uint16Array, out.data as Float32Array, n);
    else if (from === 'f16' && dtype === 'bf16') {
      const tmp = castTo(src, 'f32');
      k.castF32ToBF16(tmp.data, out.data as Uint16Array, n);
      tmp.dispose();
    } else if ((from === 'i32' || from === 'u8' || from === 'i64') && (dtype === 'f32' || dtype === 'i32' || dtype === 'u8')) {
      const s = src.data as ArrayLike<number | bigint>;
      const d = out.data as Float32Array;
      for (let i = 0; i < n; i++) d[i] = Number(s[i]);
    } else if ((from === 'f32' || from === 'i32' || from === 'u8') && dtype === 'i64') {
      const s = src.data as Float32Array;
      const d = out.data as BigInt64Array;
      for (let i = 0; i < n; i++) d[i] = BigInt(Math.trunc(s[i]!));
    } else if (from === 'f32' && (dtype === 'i32' || dtype === 'u8')) {
      const s = src.data as Float32Array;
      const d = out.data as Int32Array;
      for (let i = 0; i < n; i++) d[i] = Math.trunc(s[i]!);
    } else throw new Error(`cast: no conversion from ${from} to ${dtype} (tensor ${t.describe()})`);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    if (src !== t) src.dispose();
  }
  return out;
}

/** Bytes of storage this tensor's elements occupy (not counting views' sharing). */
export function byteSize(t: Tensor): number {
  return t.size * BYTES_PER_ELEMENT[t.dtype];
}
