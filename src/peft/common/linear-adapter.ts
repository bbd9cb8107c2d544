/**
 * The Linear wrapper the LoRA-variant methods share (VeRA, NOLA, RandLoRA, LoHa, LoKr, LoLDU, AdaLoRA), on top of
 * {@link AdapterLayer}'s bookkeeping. Each adapter adds either
 * - low-rank factors `s·drop(x)·Aᵀ·Bᵀ` (A [R, in], B [out, R], built differentiably from the method's own
 *   parameters), run through the fused LoRA op ({@link loraLinear}) together with the base GEMM, or
 * - a full delta `drop(x)·ΔWᵀ` (ΔW [out, in]: Hadamard / Kronecker structures that have no low-rank form).
 * Merging adds ΔW into the base weight and unmerging subtracts it again.
 */
import {
  add,
  backend,
  castTo,
  contiguousCopy,
  dropout,
  globalGenerator,
  linear,
  matmul,
  noGrad,
  rand,
  scale,
  tidy,
  transpose,
  type Generator,
  type Tensor,
} from '../../engine/index.js';
import { Linear, type Module } from '../../nn/index.js';
import { loraLinear, type LoraFactors } from '../lora/op.js';
import type { PeftConfigBase } from '../config.js';
import { findTargetModules, type TargetConfig } from '../targets.js';
import { isTunerLayer } from '../tuner.js';
import { peftWarn } from '../warn.js';
import { AdaptedLinear } from './adapter-layer.js';

export type F32 = Tensor<'f32'>;

/** How one adapter adds to the layer output. */
export type Contribution = { kind: 'factors'; factors: LoraFactors } | { kind: 'delta'; delta: F32; dropout: number };

/**
 * `weight += sign·Δ`, Δ [out, in] f32, for a contiguous weight stored [out, in] (or [in, out] when `transposed`),
 * f32 or bf16 (a bf16 weight is updated through an f32 copy and rounded back once).
 */
export function addIntoWeight(weight: Tensor, delta: F32, sign: number, transposed: boolean, op: string): void {
  if (!weight.isContiguous()) throw new Error(`${op} merge: base weight ${weight.describe()} must be contiguous`);
  const target = weight.dtype === 'f32' ? (weight as F32) : weight.dtype === 'bf16' ? castTo(weight, 'f32') : null;
  if (!target) throw new Error(`${op} merge: cannot merge into a ${weight.describe()} weight (f32 or bf16 only)`);
  const d = transposed ? contiguousCopy(transpose(delta)) : delta.isContiguous() ? delta : contiguousCopy(delta);
  if (d.size !== target.size) throw new Error(`${op} merge: delta ${delta.describe()} does not fit weight ${weight.describe()}`);
  backend().axpy(d.data, target.data, target.size, sign);
  if (d !== delta) d.dispose();
  if (target !== weight) {
    backend().castF32ToBF16(target.data, weight.data as Uint16Array, weight.size);
    target.dispose();
  }
}

/** An adapted base `Linear`; subclasses say what each adapter is. Every tensor an adapter registers is trained. */
export abstract class LinearAdapterLayer<Spec> extends AdaptedLinear {

  /** Creates adapter `name`: registers its tensors ({@link setAdapterTensors}) and keeps its settings. */
  protected abstract create(name: string, spec: Spec): void;
  /** What adapter `name` adds to the output (`training`: dropout and sampling apply); null: nothing this time. */
  protected abstract contribution(name: string, training: boolean): Contribution | null;
  /** Drops per-adapter settings and frozen state beyond the registered tensors (default: none). */
  protected forget(_name: string): void {}

  get inFeatures(): number {
    return this.base.inFeatures;
  }

  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /** Adds (or replaces) adapter `name`. */
  addAdapter(name: string, spec: Spec): void {
    if (this.adapterNames().includes(name)) this.deleteAdapter(name);
    this.create(name, spec);
  }

  override deleteAdapter(name: string): void {
    const had = this.adapterNames().includes(name);
    super.deleteAdapter(name);
    if (had) this.forget(name);
  }

  /** Adapter `name`'s ΔW [out, in] as evaluation computes it (differentiable). */
  deltaWeight(name: string): F32 {
    const c = this.contribution(name, false);
    if (!c) throw new Error(`${this.method}: adapter '${name}' has no weight delta`);
    if (c.kind === 'delta') return c.delta;
    const { a, b, scale: s } = c.factors;
    return scale(matmul(b, a), s);
  }

  /** Adds `sign` × adapter `name`'s ΔW into `weight` (laid out like the base weight). */
  addDeltaTo(weight: Tensor, name: string, sign: 1 | -1): void {
    noGrad(() => tidy(() => addIntoWeight(weight, this.deltaWeight(name), sign, this.base.fanInFanOut, this.method)));
  }

  protected fold(name: string, undo: boolean, base: Linear): void {
    this.addDeltaTo(base.weight, name, undo ? -1 : 1);
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    const contributions = names.flatMap((n) => this.contribution(n, this.training) ?? []);
    const factors = contributions.flatMap((c) => (c.kind === 'factors' ? [c.factors] : []));
    let y = loraLinear(x, this.base.weightOutIn(), this.base.bias, factors);
    for (const c of contributions)
      if (c.kind === 'delta') y = add(y, linear(c.dropout > 0 && this.training ? dropout(x, c.dropout, globalGenerator, true) : x, c.delta));
    return y;
  }
}

/**
 * A method's `inject` for Linear targets: adds the adapter to an existing layer of class `Cls`, wraps a `Linear`,
 * or returns null for other module types. A config `fan_in_fan_out` that contradicts the layer is fixed with a
 * warning, as PEFT does (the layer itself always follows the base's real layout).
 */
export function injectLinear<S, L extends LinearAdapterLayer<S>>(
  target: Module,
  Cls: new (base: Linear) => L,
  adapterName: string,
  spec: S,
  config: PeftConfigBase,
  moduleName: string,
): L | null {
  if (target instanceof Cls) {
    target.addAdapter(adapterName, spec);
    return target;
  }
  if (!(target instanceof Linear)) return null;
  const fields = config as PeftConfigBase & { fan_in_fan_out?: boolean };
  if (fields.fan_in_fan_out !== undefined && fields.fan_in_fan_out !== target.fanInFanOut) {
    peftWarn(
      target.fanInFanOut
        ? `fan_in_fan_out is false but ${moduleName} is a Conv1D layer (weight stored [in, out]); setting fan_in_fan_out to true`
        : `fan_in_fan_out is true but ${moduleName} is a Linear layer; setting fan_in_fan_out to false`,
    );
    fields.fan_in_fan_out = target.fanInFanOut;
  }
  const layer = new Cls(target);
  layer.addAdapter(adapterName, spec);
  return layer;
}

const largestShapes = new WeakMap<Module, WeakMap<TargetConfig, { maxIn: number; maxOut: number }>>();

/**
 * The largest in- and out-features over the linear layers `config` targets in `model` (PEFT's `_find_dim`): the
 * size of the matrices VeRA's layers share, each layer using a corner.
 */
export function largestTargetShape(model: Module, config: TargetConfig): { maxIn: number; maxOut: number } {
  // Every layer of one injection asks with the same config object: scan the model once per (model, config).
  const known = largestShapes.get(model)?.get(config);
  if (known) return known;
  let [maxIn, maxOut] = [0, 0];
  for (const path of findTargetModules(model, config)) {
    const m = model.getModule(path);
    const base = isTunerLayer(m) ? m.baseLayer : m;
    if (base instanceof Linear) [maxIn, maxOut] = [Math.max(maxIn, base.inFeatures), Math.max(maxOut, base.outFeatures)];
  }
  const shape = { maxIn, maxOut };
  if (!largestShapes.has(model)) largestShapes.set(model, new WeakMap());
  largestShapes.get(model)!.set(config, shape);
  return shape;
}

/** U(−1/√fanIn, 1/√fanIn) for a [out, fanIn] matrix: torch's `kaiming_uniform_(a=√5)`, PEFT's default factor init. */
export function kaimingUniform(shape: readonly [number, number], gen: Generator = globalGenerator): F32 {
  const bound = 1 / Math.sqrt(shape[1]);
  return rand(shape, -bound, bound, gen);
}
