/**
 * The HF PEFT adapter format on disk:
 * - `adapter_config.json`: the config with PEFT's field names, keys sorted, two-space indent;
 * - `adapter_model.safetensors`: method-level tensors under their own keys (VeRA's `base_model.vera_A`), then keys `base_model.model.<module path>.lora_A.weight` ([r, in]) and
 *   `lora_B.weight` ([out, r]), embeddings `lora_embedding_A` / `lora_embedding_B` (no `.weight`), `modules_to_save`
 *   copies under the module's own name (`score.weight`), trainable biases (`bias` all / lora_only) under their
 *   PEFT names (`q_proj.base_layer.bias`). The adapter name never appears in keys; the default adapter is saved in
 *   `dir`, any other in `dir/<name>/`. Files are written atomically.
 */
import { mkdirSync, readFileSync, existsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { castTo, contiguousCopy, zeros, type Tensor } from '../engine/index.js';
import { LLAMA_BIAS_GROUPS } from '../models/llama.js';
import { SafetensorsFile, writeFileAtomic, writeSafetensors, type SafeDType, type TensorData } from '../io/safetensors.js';
import { configToJson, type PeftConfigBase } from './config.js';
import { peftWarn } from './warn.js';
import { peftMethod, type SharedTensor } from './registry.js';
import { isTunerLayer } from './tuner.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import type { PeftModel } from './model.js';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
/** Every adapter key starts with this (PeftModel → LoraModel → model). */
export const KEY_PREFIX = 'base_model.model.';

/** An adapter read from disk without a base model. */
export interface AdapterFiles {
  /** The parsed config (defaults filled, unknown keys dropped). */
  config: PeftConfigBase;
  /** The raw `adapter_config.json` object. */
  rawConfig: Record<string, unknown>;
  /** Tensors by checkpoint key, in file order. */
  tensors: Map<string, TensorData>;
}

/** Parses `dir/adapter_config.json` with its method's schema. */
export function readAdapterConfig(dir: string): { config: PeftConfigBase; rawConfig: Record<string, unknown> } {
  const path = join(dir, ADAPTER_CONFIG_NAME);
  if (!existsSync(path)) throw new Error(`no ${ADAPTER_CONFIG_NAME} in ${dir} (not a PEFT adapter directory)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object`);
  const rawConfig = raw as Record<string, unknown>;
  return { config: peftMethod(methodOnDisk(rawConfig)).parseConfig(rawConfig, path), rawConfig };
}

/** PEFT has no DoRA type: its DoRA adapters are `peft_type: "LORA"` with `use_dora: true` (peftjs's "DORA"). */
function methodOnDisk(raw: Record<string, unknown>): unknown {
  return raw.peft_type === 'LORA' && raw.use_dora === true ? 'DORA' : raw.peft_type;
}

/** The config as PEFT writes it (see {@link methodOnDisk}). */
function configForDisk(config: PeftConfigBase): PeftConfigBase {
  return config.peft_type === 'DORA' ? ({ ...config, peft_type: 'LORA', use_dora: true } as PeftConfigBase) : config;
}

/** Reads an adapter directory (config + every tensor) — no base model needed. */
export function readAdapterFiles(dir: string): AdapterFiles {
  const { config, rawConfig } = readAdapterConfig(dir);
  const path = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(path))
    throw new Error(`no ${ADAPTER_WEIGHTS_NAME} in ${dir}${existsSync(join(dir, 'adapter_model.bin')) ? ' (only the legacy pickle adapter_model.bin, which peftjs does not read)' : ''}`);
  const f = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, TensorData>();
    for (const name of f.names()) {
      const info = f.info(name);
      tensors.set(name, { dtype: info.dtype, shape: info.shape, data: f.read(name) });
    }
    return { config, rawConfig, tensors };
  } finally {
    f.close();
  }
}

/** Writes an adapter directory: tensors sorted by key with `{format: "pt"}` metadata, and the config. */
export function writeAdapterFiles(dir: string, config: PeftConfigBase, tensors: Iterable<readonly [string, TensorData]>): void {
  mkdirSync(dir, { recursive: true });
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), sorted, { format: 'pt' });
  const text = new TextEncoder().encode(configToJson(configForDisk(config)));
  writeFileAtomic(join(dir, ADAPTER_CONFIG_NAME), (fd) => {
    writeSync(fd, text);
  });
}

/** A tensor's contents as safetensors data in `dtype` (default: its own dtype). */
export function tensorData(t: Tensor, dtype?: SafeDType): TensorData {
  const want = dtype ?? (t.dtype === 'f32' ? 'F32' : t.dtype === 'bf16' ? 'BF16' : t.dtype === 'f16' ? 'F16' : null);
  if (want !== 'F32' && want !== 'BF16') throw new Error(`adapter save: cannot write ${t.describe()} as ${want ?? t.dtype}`);
  const ours = want === 'F32' ? 'f32' : 'bf16';
  const c = t.dtype === ours ? contiguousCopy(t) : castTo(t, ours);
  const data = (c.data as Float32Array | Uint16Array).slice(0, c.size);
  c.dispose();
  return { dtype: want, shape: [...t.shape], data };
}

/**
 * The tensors of adapter `name` under their checkpoint keys (adapter name stripped, `base_model.model.` prefix),
 * as PEFT's `get_peft_model_state_dict` selects them.
 */
export function adapterStateDict(peft: PeftModel, name: string): [string, Tensor][] {
  const shared = sharedTensors(peft, name).filter((s) => s.saved);
  return [...layerStateDict(peft, name), ...shared.map((s) => [s.key, s.tensor] as [string, Tensor])];
}

/** The method-level tensors of adapter `name` (VeRA's projections), freshly assembled. */
function sharedTensors(peft: PeftModel, name: string): SharedTensor[] {
  return peft.method(name).sharedTensors?.(peft, name) ?? [];
}

/** {@link adapterStateDict} without the method-level tensors. */
function layerStateDict(peft: PeftModel, name: string): [string, Tensor][] {
  const config = peft.peftConfig.get(name);
  if (!config) throw new Error(`no adapter '${name}'`);
  const bias = (config as { bias?: string }).bias ?? 'none';
  const out: [string, Tensor][] = [];
  const bare = peft.method(name).bareKeys === true;
  const prefixed = (path: string, suffix: string) => (bare ? suffix : `${KEY_PREFIX}${path ? `${path}.` : ''}${suffix}`);
  for (const [path, m] of peft.model.namedModules()) {
    if (isTunerLayer(m) && m.adapterNames().includes(name)) {
      for (const [suffix, t] of m.adapterTensors(name)) out.push([prefixed(path, suffix), t]);
      if (bias.endsWith('_only')) {
        const b = m.baseLayer.namedParameters().find(([k]) => k === 'bias');
        if (b) out.push([prefixed(path, 'base_layer.bias'), b[1]]);
      }
    } else if (m instanceof ModulesToSaveWrapper) for (const [suffix, t] of m.adapterTensors(name)) out.push([prefixed(path, suffix), t]);
  }
  if (bias === 'all')
    for (const [key, t] of peft.model.namedParameters())
      if ((key === 'bias' || key.endsWith('.bias')) && !key.includes('.modules_to_save.') && !key.includes('.original_module.')) out.push([KEY_PREFIX + key, t]);
  return out;
}

/** Saves adapters (default: all) in the HF PEFT layout; `inference_mode` is written true, as PEFT does. */
export function savePeftModel(peft: PeftModel, dir: string, adapters: readonly string[] = [...peft.peftConfig.keys()]): void {
  for (const name of adapters) {
    const config = peft.peftConfig.get(name);
    if (!config) throw new Error(`savePeftModel: no adapter '${name}'`);
    const dtype = peft.adapterDType.get(name) ?? 'F32';
    const tensors = adapterStateDict(peft, name).map(([k, t]) => [k, tensorData(t, t.dtype === 'f32' ? dtype : undefined)] as const);
    writeAdapterFiles(name === 'default' ? dir : join(dir, name), { ...config, inference_mode: true }, tensors);
  }
}

export interface LoadAdapterOptions {
  /** Train the loaded adapter (PEFT `is_trainable`); default false: inference mode, nothing trainable. */
  isTrainable?: boolean;
}

/**
 * Loads the adapter in `dir` into `peft` as adapter `name`: injects it per its config, then fills its tensors.
 * Errors name the offending key: a key the base model has no module for, a shape that differs (both shapes), or
 * an adapter tensor the file lacks. On error the adapter is removed again.
 */
export function loadAdapterInto(peft: PeftModel, dir: string, name: string, opts: LoadAdapterOptions = {}): void {
  const files = readAdapterFiles(dir);
  peft.addAdapter(name, { ...files.config, inference_mode: !opts.isTrainable });
  try {
    fillAdapterTensors(peft, name, files, dir);
  } catch (e) {
    peft.deleteAdapter(name);
    throw e;
  }
}

/** Fills adapter `name` (already injected from `files.config`) with the tensors of `files`; see {@link loadAdapterInto}. */
export function fillAdapterTensors(peft: PeftModel, name: string, files: AdapterFiles, dir: string): void {
  // Method-level tensors are optional: when the file has them they replace the seeded ones, else those stay.
  const shared = new Map(sharedTensors(peft, name).map((s) => [s.key, s]));
  const expected = new Map<string, Tensor>([...layerStateDict(peft, name), ...[...shared].map(([k, s]) => [k, s.tensor] as [string, Tensor])]);
  const prefix = peftMethod(files.config.peft_type).prefix;
  // Older PEFT saved a lora_only bias as `<module>.bias`, newer as `<module>.base_layer.bias`.
  const alias = (key: string) => key.replace(/\.bias$/, '.base_layer.bias');
  const dtypes = new Set<SafeDType>();
  const seen = new Set<string>();
  for (const [fileKey, data] of files.tensors) {
    const key = expected.has(fileKey) || fileKey.startsWith(KEY_PREFIX) ? fileKey : KEY_PREFIX + fileKey;
    const modelKey = expected.has(key) ? key : expected.has(alias(key)) ? alias(key) : null;
    if (!modelKey)
      throw new Error(
        `${dir}: adapter tensor ${fileKey} ${JSON.stringify(data.shape)} has no place in the base model (wrong base model? no module ${key.slice(KEY_PREFIX.length).replace(/\.(lora_\w+)(\.weight)?$/, '')} is targeted)`,
      );
    const t = expected.get(modelKey)!;
    if (data.shape.length !== t.rank || data.shape.some((d, i) => d !== t.shape[i]))
      throw new Error(`${dir}: adapter tensor ${fileKey} has shape [${data.shape.join(', ')}] but the model's is [${t.shape.join(', ')}] (wrong base model or rank)`);
    copyInto(t, data, fileKey);
    if (!shared.has(modelKey) && modelKey.slice(KEY_PREFIX.length).split('.').some((s) => s.startsWith(prefix))) dtypes.add(data.dtype);
    seen.add(modelKey);
  }
  const missing = [...expected.keys()].filter((k) => !seen.has(k) && !shared.has(k));
  if (missing.length)
    throw new Error(`${dir}: the adapter file lacks ${missing.length} tensor(s) the config implies: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`);
  for (const [k, s] of shared) {
    if (seen.has(k)) s.apply();
    if (seen.has(k) !== s.saved)
      peftWarn(
        s.saved
          ? `${dir}: the config has save_projection true but the file lacks ${k}; regenerating it from projection_prng_key`
          : `${dir}: the config has save_projection false but the file holds ${k}; using the file's values (set save_projection true to say so)`,
      );
    s.tensor.dispose();
  }
  if (dtypes.size === 1) peft.adapterDType.set(name, [...dtypes][0]!);
}

/** Copies safetensors data into an existing tensor (converting bf16 / f16 data to its dtype). */
function copyInto(t: Tensor, data: TensorData, key: string): void {
  if (t.dtype === 'f32' && data.dtype === 'F32') (t.data as Float32Array).set(data.data as Float32Array);
  else if (t.dtype === 'f32' && (data.dtype === 'BF16' || data.dtype === 'F16')) {
    const bits = data.data as Uint16Array;
    const out = t.data as Float32Array;
    const words = new Uint32Array(out.buffer, out.byteOffset, bits.length); // bf16 is the top half of an f32
    if (data.dtype === 'BF16') for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
    else for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]!);
  } else if (t.dtype === 'bf16' && data.dtype === 'BF16') (t.data as Uint16Array).set(data.data as Uint16Array);
  else throw new Error(`adapter tensor ${key}: cannot load ${data.dtype} data into ${t.describe()}`);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export interface SaveMergedOptions {
  /** The base model's `config.json` contents (copied), or a directory to copy `config.json` from. */
  config: Record<string, unknown> | string;
  /** Adapters merged into the written weights (default: the active ones). */
  adapters?: readonly string[];
}

/**
 * Gives the biases a fold added to bias-less layers (SSF's shift) a place in the checkpoint format: a Llama config
 * holds biases per group of layers (`attention_bias`: q/k/v/o, `mlp_bias`: gate/up/down), so the group's flag is set
 * in `config` and the group's other layers get zero biases. Other formats have no such place: an error.
 */
function placeAddedBiases(config: Record<string, unknown>, state: [string, Tensor][], added: readonly string[]): [string, Tensor][] {
  const groups = Object.entries(LLAMA_BIAS_GROUPS);
  const flags = added.map((key) => {
    const module = /\.(\w+)\.bias$/.exec(key)?.[1] ?? '';
    const flag = config.model_type === 'llama' ? groups.find(([, names]) => names.includes(module))?.[0] : undefined;
    if (!flag)
      throw new Error(
        `saveMergedModel: the merge adds ${key} (SSF's shift on a layer without bias), which a ${String(config.model_type)} checkpoint has no place for; save the adapter instead (PeftModel.save) or use it merged in memory`,
      );
    return flag;
  });
  const keys = new Set(state.map(([k]) => k));
  const zerosFor: [string, Tensor][] = [];
  for (const flag of new Set(flags)) {
    config[flag] = true;
    const names = LLAMA_BIAS_GROUPS[flag as keyof typeof LLAMA_BIAS_GROUPS];
    for (const [k, w] of state) {
      const m = /^(.*\.(\w+))\.weight$/.exec(k);
      if (m && names.includes(m[2]!) && !keys.has(`${m[1]}.bias`)) zerosFor.push([`${m[1]}.bias`, zeros([w.shape[0]!])]);
    }
  }
  return [...state, ...zerosFor];
}

/**
 * Writes a plain HF checkpoint (`config.json` + `model.safetensors`) of the base model with the adapters merged
 * into the weights — loadable by peftjs and transformers. The PeftModel itself is not changed.
 */
export function saveMergedModel(peft: PeftModel, dir: string, opts: SaveMergedOptions): void {
  const adapters = opts.adapters ?? peft.activeAdapters;
  for (const n of adapters) if (!peft.method(n).supportsMerge) throw new Error(`saveMergedModel: adapter '${n}' cannot be merged`);
  let configText =
    typeof opts.config === 'string' ? readFileSync(join(opts.config, 'config.json'), 'utf8') : JSON.stringify(opts.config, null, 2);
  let state = peft.baseStateDict(adapters);
  const original = new Set(peft.baseStateDict().map(([k]) => k));
  const added = state.map(([k]) => k).filter((k) => !original.has(k));
  if (added.length) {
    const config = JSON.parse(configText) as Record<string, unknown>;
    state = placeAddedBiases(config, state, added);
    configText = JSON.stringify(config, null, 2);
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(
    join(dir, 'model.safetensors'),
    state.map(([k, t]) => [k, tensorData(t)] as const),
    { format: 'pt' },
  );
  const bytes = new TextEncoder().encode(configText);
  writeFileAtomic(join(dir, 'config.json'), (fd) => {
    writeSync(fd, bytes);
  });
}
