/**
 * PyTorch-style methods on Tensor (`x.matmul(w).add(b).relu()`), delegating to the op functions. Kept apart from
 * tensor.ts so the Tensor class does not import every op.
 */
import { backward } from './autograd.js';
import type { DType } from './dtype.js';
import * as ew from './ops/elementwise.js';
import { matmul } from './ops/matmul.js';
import { mean, sum } from './ops/reduce.js';
import * as shape from './ops/shape.js';
import { logSoftmax, softmax } from './ops/softmax.js';
import { Tensor } from './tensor.js';

type F32 = Tensor<'f32'>;

declare module './tensor.js' {
  interface Tensor<D extends DType> {
    add(other: Tensor | number): F32;
    sub(other: Tensor | number): F32;
    mul(other: Tensor | number): F32;
    div(other: Tensor | number): F32;
    neg(): F32;
    exp(): F32;
    log(): F32;
    tanh(): F32;
    relu(): F32;
    sigmoid(): F32;
    silu(): F32;
    sqrt(): F32;
    square(): F32;
    matmul(other: Tensor): F32;
    sum(axes?: number | readonly number[], keepdim?: boolean): F32;
    mean(axes?: number | readonly number[], keepdim?: boolean): F32;
    softmax(): F32;
    logSoftmax(): F32;
    reshape(shape: readonly number[]): Tensor<D>;
    view(shape: readonly number[]): Tensor<D>;
    transpose(dim0?: number, dim1?: number): Tensor<D>;
    permute(dims: readonly number[]): Tensor<D>;
    narrow(dim: number, start: number, length: number): Tensor<D>;
    expand(shape: readonly number[]): Tensor<D>;
    unsqueeze(dim: number): Tensor<D>;
    squeeze(dim: number): Tensor<D>;
    flatten(start?: number, end?: number): Tensor<D>;
    contiguous(): Tensor<D>;
    to<T extends DType>(dtype: T): Tensor<T>;
    /** Back-propagates from this tensor (see `backward`). */
    backward(grad?: F32): void;
  }
}

const p = Tensor.prototype;
p.add = function (o) { return ew.add(this, o); };
p.sub = function (o) { return ew.sub(this, o); };
p.mul = function (o) { return ew.mul(this, o); };
p.div = function (o) { return ew.div(this, o); };
p.neg = function () { return ew.neg(this); };
p.exp = function () { return ew.exp(this); };
p.log = function () { return ew.log(this); };
p.tanh = function () { return ew.tanh(this); };
p.relu = function () { return ew.relu(this); };
p.sigmoid = function () { return ew.sigmoid(this); };
p.silu = function () { return ew.silu(this); };
p.sqrt = function () { return ew.sqrt(this); };
p.square = function () { return ew.square(this); };
p.matmul = function (o) { return matmul(this, o); };
p.sum = function (axes, keepdim) { return sum(this, axes, keepdim); };
p.mean = function (axes, keepdim) { return mean(this, axes, keepdim); };
p.softmax = function () { return softmax(this); };
p.logSoftmax = function () { return logSoftmax(this); };
p.reshape = function (s) { return shape.reshape(this, s); };
p.view = function (s) { return shape.reshape(this, s); };
p.transpose = function (a, b) { return shape.transpose(this, a, b); };
p.permute = function (d) { return shape.permute(this, d); };
p.narrow = function (d, s, l) { return shape.narrow(this, d, s, l); };
p.expand = function (s) { return shape.expand(this, s); };
p.unsqueeze = function (d) { return shape.unsqueeze(this, d); };
p.squeeze = function (d) { return shape.squeeze(this, d); };
p.flatten = function (s, e) { return shape.flatten(this, s, e); };
p.contiguous = function () { return shape.contiguous(this); };
p.to = function (dtype) { return shape.cast(this, dtype); };
p.backward = function (grad) { backward(this, grad); };
