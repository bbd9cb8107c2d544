/**
 * Merge configs: YAML in mergekit's schema (https://github.com/arcee-ai/mergekit, `mergekit-yaml`) for the methods
 * peftjs supports, so mergekit configs run unchanged:
 *
 * ```yaml
 * merge_method: ties
 * base_model: ./llama-base
 * models:
 *   - model: ./llama-math
 *     parameters: { weight: 1.0, density: [1, 0.7, 0.1] }   # a list = a gradient over the layers
 *   - model: ./llama-code
 *     parameters:
 *       weight: [{ filter: mlp, value: 0.5 }, { value: 0 }] # first filter contained in the tensor name wins
 * parameters: { normalize: true }
 * dtype: bfloat16
 * ```
 *
 * Also accepted: `slices:` when it is one slice whose sources all span the same full layer range (the common
 * SLERP form), `out_dtype`, `tokenizer_source: base`. peftjs extensions per model: `fisher:` (a safetensors file
 * of diagonal Fisher tensors, same names as the weights) for `merge_method: fisher`, `gram:` (a safetensors file
 * of input Gram matrices named by the linear weight they feed) for `regmean`. Anything else is an error naming
 * the key. Model references are local folders (nothing is downloaded).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { openCheckpointTensors } from '../io/sharded.js';
import type { TensorSource } from '../io/safetensors.js';
import { parseDType, toF32, isFloatDType, type FloatDType } from './dtype.js';
import { METHODS, type MethodDef, type MethodParams, type ParamValue, type SideTensor } from './registry.js';
import { writeMergeRecord } from './record.js';
import { mergeCheckpoints, type MergeProgress, type MergeReport, type TensorContext } from './stream.js';

/** A gradient (list of numbers, interpolated across layers) or a scalar. */
export type ScalarOrGradient = ParamValue | number[];
/** A parameter setting: a value, or conditional values tried in order (`filter` is a substring of the tensor name). */
export type Setting = ScalarOrGradient | { filter?: string; value: ScalarOrGradient }[];

/** One input model. */
export interface ModelEntry {
  model: string;
  parameters: Record<string, Setting>;
  fisher?: string;
  gram?: string;
}

/** A validated merge config. */
export interface MergeConfig {
  mergeMethod: string;
  /** The models to merge, base excluded. */
  models: ModelEntry[];
  baseModel: string | null;
  parameters: Record<string, Setting>;
  /** Output dtype of floating tensors (undefined: as the inputs). */
  dtype?: FloatDType;
  /** The YAML text it was parsed from, written beside the merged weights (see record.ts). */
  source?: string;
}

/** A config problem: the message names the key. */
export class MergeConfigError extends Error {
  override name = 'MergeConfigError';
}

const TOP_KEYS = ['merge_method', 'models', 'slices', 'base_model', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source'];
const KNOWN_UNSUPPORTED: Record<string, string> = {
  modules: 'multi-module (VLM) merges are not supported',
  tokenizer: 'tokenizer surgery is not supported; the base model’s tokenizer is copied',
  chat_template: 'chat templates are copied from the base model; overriding them is not supported',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(key: string, problem: string): never {
  throw new MergeConfigError(`merge config: ${key}: ${problem}`);
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (allowed.includes(k)) continue;
    const path = where ? `${where}.${k}` : k;
    fail(path, KNOWN_UNSUPPORTED[k] ?? `unsupported key (supported here: ${allowed.join(', ')})`);
  }
}

function modelRef(v: unknown, key: string): string {
  if (typeof v !== 'string' || v === '') fail(key, `must be a model folder path, got ${JSON.stringify(v)}`);
  if (v.includes('+')) fail(key, `"${v}": the model+lora reference syntax is not supported; merge the adapter into its base first (peftjs merge with an adapter config)`);
  return v;
}

function checkSetting(v: unknown, key: string): Setting {
  const scalar = (x: unknown) => typeof x === 'number' || typeof x === 'boolean';
  const gradient = (x: unknown) => scalar(x) || (Array.isArray(x) && x.length > 0 && x.every((e) => typeof e === 'number'));
  if (gradient(v)) return v as Setting;
  if (isObject(v)) v = [v];
  if (Array.isArray(v) && v.length > 0 && v.every(isObject)) {
    v.forEach((c, i) => {
      checkKeys(c, ['filter', 'value'], `${key}[${i}]`);
      if (c.filter !== undefined && typeof c.filter !== 'string') fail(`${key}[${i}].filter`, 'must be a string (a substring of tensor names)');
      if (!gradient(c.value)) fail(`${key}[${i}].value`, `must be a number, a boolean or a list of numbers, got ${JSON.stringify(c.value)}`);
    });
    return v as Setting;
  }
  return fail(key, `must be a number, a boolean, a list of numbers (a layer gradient) or a list of {filter, value}, got ${JSON.stringify(v)}`);
}

function checkParameters(v: unknown, key: string, allowed: readonly string[]): Record<string, Setting> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) fail(key, 'must be a mapping of parameter names to values');
  checkKeys(v, allowed, key);
  return Object.fromEntries(Object.entries(v).map(([k, s]) => [k, checkSetting(s, `${key}.${k}`)]));
}

/** Parses and validates a YAML merge config; relative model paths resolve against `baseDir` (default: cwd). */
export function parseMergeConfig(text: string, baseDir = process.cwd()): MergeConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MergeConfigError(`merge config: not valid YAML: ${(e as Error).message}`);
  }
  if (!isObject(doc)) fail('(top level)', 'must be a mapping with merge_method and models');
  checkKeys(doc, TOP_KEYS, '');
  const methodName = doc.merge_method;
  if (typeof methodName !== 'string') fail('merge_method', `is required (one of ${Object.keys(METHODS).join(', ')})`);
  const method: MethodDef | undefined = METHODS[methodName];
  if (!method) fail('merge_method', `unsupported method "${methodName}" (supported: ${Object.keys(METHODS).join(', ')})`);
  if (doc.tokenizer_source !== undefined && doc.tokenizer_source !== 'base') fail('tokenizer_source', `only "base" is supported (the base model’s tokenizer is copied), got ${JSON.stringify(doc.tokenizer_source)}`);

  const paramNames = method.params.map((p) => p.name);
  const modelParamNames = method.params.filter((p) => p.perModel).map((p) => p.name);
  const entries = modelEntries(doc);
  const base = doc.base_model === undefined || doc.base_model === null ? null : modelRef(doc.base_model, 'base_model');
  const where = (p: string) => resolve(baseDir, p);

  const models: ModelEntry[] = [];
  entries.forEach(([raw, key]) => {
    if (!isObject(raw)) fail(key, 'must be a mapping with a "model" key');
    checkKeys(raw, ['model', 'parameters', 'fisher', 'gram', 'layer_range'], key);
    const model = modelRef(raw.model, `${key}.model`);
    if (base !== null && model === base && method.needsBase) return; // the base's own entry carries no task vector
    const entry: ModelEntry = { model: where(model), parameters: checkParameters(raw.parameters, `${key}.parameters`, modelParamNames) };
    for (const stat of ['fisher', 'gram'] as const) {
      if (raw[stat] === undefined) continue;
      if (method.needs !== stat) fail(`${key}.${stat}`, `only used by merge_method: ${stat === 'fisher' ? 'fisher' : 'regmean'}`);
      if (typeof raw[stat] !== 'string') fail(`${key}.${stat}`, 'must be a path to a safetensors file');
      entry[stat] = where(raw[stat] as string);
    }
    if (method.needs && entry[method.needs] === undefined) fail(`${key}.${method.needs}`, `is required by merge_method: ${methodName}`);
    models.push(entry);
  });
  if (models.length === 0) fail('models', 'lists no model to merge');
  if (method.needsBase && base === null) fail('base_model', `is required by merge_method: ${methodName}`);
  if (method.models !== undefined && models.length !== method.models) {
    fail('models', `${methodName} merges the base with exactly ${method.models} other model(s), got ${models.length}`);
  }
  const parameters = checkParameters(doc.parameters, 'parameters', paramNames);
  for (const p of method.params) {
    if (p.default !== undefined) continue;
    const missing = p.perModel ? models.findIndex((m) => m.parameters[p.name] === undefined) : 0;
    if (parameters[p.name] === undefined && missing >= 0) {
      fail(p.perModel ? `models[${missing}].parameters.${p.name}` : `parameters.${p.name}`, `is required by merge_method: ${methodName}`);
    }
  }
  const dtypeKey = doc.out_dtype !== undefined ? 'out_dtype' : 'dtype';
  let dtype: FloatDType | undefined;
  if (doc[dtypeKey] !== undefined) {
    dtype = typeof doc[dtypeKey] === 'string' ? parseDType(doc[dtypeKey] as string) : undefined;
    if (!dtype) fail(dtypeKey, `unsupported dtype ${JSON.stringify(doc[dtypeKey])} (float32, float16, bfloat16)`);
  }
  return { mergeMethod: methodName, models, baseModel: base === null ? null : where(base), parameters, dtype, source: text };
}

/** The model entries of `models:`, or of a `slices:` that is one full-range slice (anything else is an error). */
function modelEntries(doc: Record<string, unknown>): [unknown, string][] {
  if (doc.models !== undefined && doc.slices !== undefined) fail('slices', 'give either models or slices, not both');
  if (doc.models !== undefined) {
    if (!Array.isArray(doc.models)) fail('models', 'must be a list of {model, parameters}');
    return doc.models.map((m, i) => [m, `models[${i}]`]);
  }
  if (doc.slices === undefined) fail('models', 'is required (a list of {model, parameters})');
  const slices = doc.slices;
  if (!Array.isArray(slices) || slices.length !== 1 || !isObject(slices[0])) {
    fail('slices', 'only one slice spanning the whole model is supported (layer stacking / frankenmerges are not); use models:');
  }
  checkKeys(slices[0], ['sources'], 'slices[0]');
  const sources = slices[0].sources;
  if (!Array.isArray(sources) || sources.length === 0) fail('slices[0].sources', 'must be a non-empty list');
  const ranges = sources.map((s) => (isObject(s) ? JSON.stringify(s.layer_range) : ''));
  if (ranges.some((r) => r !== ranges[0]) || ranges[0] === undefined || !/^\[0,\d+\]$/.test(ranges[0])) {
    fail('slices[0].sources', 'every source must have the same layer_range [0, N] covering the whole model');
  }
  return sources.map((s, i) => [s, `slices[0].sources[${i}]`]);
}

/**
 * The value of `setting` for tensor `name` at layer position t ∈ [0, 1], as mergekit evaluates it: a scalar as
 * is; a list of numbers is a gradient, piecewise-linear over t; a list of conditions gives the first whose filter
 * is absent, "*", or a substring of `name` (undefined when none matches).
 */
export function evaluateSetting(setting: Setting, name: string, t: number): ParamValue | undefined {
  if (typeof setting === 'number' || typeof setting === 'boolean') return setting;
  if (setting.length > 0 && typeof setting[0] === 'number') {
    const g = setting as number[];
    const scaled = t * (g.length - 1);
    const i0 = Math.floor(scaled), i1 = Math.min(g.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * g[i0] + frac * g[i1];
  }
  for (const c of setting as { filter?: string; value: ScalarOrGradient }[]) {
    if (c.filter === undefined || c.filter === '*' || name.includes(c.filter)) return evaluateSetting(c.value, name, t);
  }
  return undefined;
}

/** Layer position for gradients: i / (L − 1) inside block i (1 when there is one block), 0 outside the blocks. */
export function layerPosition(ctx: TensorContext): number {
  if (ctx.layer === null) return 0;
  return ctx.numLayers > 1 ? ctx.layer / (ctx.numLayers - 1) : 1;
}

/** Options of {@link runMerge}. */
export interface RunMergeOptions {
  maxShardBytes?: number;
  /** Elements per range of the streamed (element-wise) methods (default 2²¹). */
  chunkElements?: number;
  /** Read ahead on a native thread (default: inputs of 256 MB or more, with the native backend). */
  prefetch?: boolean;
  /** Write output shards from a worker thread (default: inputs of 256 MB or more). */
  writeBehind?: boolean;
  /** Read inputs through memory mappings (default: when the backend can, see StreamMergeOptions.mapInputs). */
  mapInputs?: boolean;
  /** Kernel threads during the merge (default: all cores, see StreamMergeOptions.threads). */
  threads?: number;
  /** Seed of the random methods (dare_*); default 0. */
  seed?: number;
  onProgress?: (p: MergeProgress) => void;
}

/** FNV-1a hash of a string, so every tensor gets its own DARE mask. */
function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Runs a parsed config: a streamed merge of the checkpoints into `out`, the config and a model card beside them (record.ts). */
export function runMerge(config: MergeConfig, out: string, opts: RunMergeOptions = {}): MergeReport {
  const method = METHODS[config.mergeMethod];
  const paths = [...(method.needsBase ? [config.baseModel!] : []), ...config.models.map((m) => m.model)];
  for (const p of [...paths, ...(config.baseModel ? [config.baseModel] : [])]) {
    if (!existsSync(p)) throw new MergeConfigError(`merge config: model ${p} does not exist (model references are local folders; peftjs does not download)`);
  }
  const stats: (TensorSource | null)[] = config.models.map((m) => (method.needs && m[method.needs] ? openCheckpointTensors(m[method.needs]!) : null));
  const side: SideTensor = (i, name) => {
    const s = stats[i];
    if (!s || !s.has(name)) return null;
    const info = s.info(name);
    if (!isFloatDType(info.dtype)) throw new Error(`${config.mergeMethod}: ${name} in ${info.file} is ${info.dtype}, not floating point`);
    return toF32(s.read(name), info.dtype);
  };
  const seed = opts.seed ?? 0;
  const fisher: SideTensor = method.needs === 'fisher' ? side : () => null;
  const gram: SideTensor = method.needs === 'gram' ? side : () => null;
  // The method's parameters for one tensor: filters and gradients evaluated at its name and layer.
  const params = (ctx: TensorContext): MethodParams => {
    const t = layerPosition(ctx);
    const value = (p: (typeof method.params)[number], own: Record<string, Setting>): ParamValue => {
      const setting = own[p.name] ?? config.parameters[p.name];
      const v = setting === undefined ? undefined : evaluateSetting(setting, ctx.name, t);
      if (v !== undefined) return v;
      if (p.default !== undefined) return p.default;
      throw new MergeConfigError(`merge config: ${p.name}: no value applies to tensor ${ctx.name} (add a condition without a filter)`);
    };
    const global = Object.fromEntries(method.params.filter((p) => !p.perModel).map((p) => [p.name, value(p, {})]));
    const perModel = config.models.map((m) => Object.fromEntries(method.params.filter((p) => p.perModel).map((p) => [p.name, value(p, m.parameters)])));
    return { ctx, global, perModel, seed: (hashName(ctx.name) ^ seed) >>> 0, fisher, gram };
  };
  try {
    const report = mergeCheckpoints({
      inputs: paths,
      filesFrom: config.baseModel ?? paths[0],
      out,
      outDtype: config.dtype,
      maxShardBytes: opts.maxShardBytes,
      chunkElements: opts.chunkElements,
      prefetch: opts.prefetch,
      writeBehind: opts.writeBehind,
      mapInputs: opts.mapInputs,
      threads: opts.threads,
      onProgress: opts.onProgress,
      merge: (ctx, tensors) => method.merge({ ...params(ctx), tensors }),
      chunked: method.chunked ? (ctx, scan) => method.chunked!(params(ctx), scan) : undefined,
    });
    writeMergeRecord(config, out);
    return report;
  } finally {
    for (const s of stats) s?.close();
  }
}
