/**
 * Loading pretrained models: a Hugging Face checkpoint folder (config.json + safetensors, single or sharded) or a
 * llama2.c `.bin`, into the architecture the registry names.
 *
 * Dtypes: the checkpoint's F32/F16/BF16 tensors become `dtype` (default f32) for projection matrices and
 * embedding tables (bf16 embeddings are looked up exactly and, when tied, make the output head a bf16 GEMM);
 * norm weights and biases always stay f32.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { castTo, fromStorage, Generator, keep, randn, full, type Tensor } from '../engine/index.js';
import { openCheckpointTensors } from '../io/sharded.js';
import type { TensorSource } from '../io/safetensors.js';
import { ConfigReader, readConfigJson } from './config.js';
import { isLlama2cModelFile, Llama2cFile, llama2cModel } from './llama2c.js';
import { architectureFor } from './registry.js';
import { isCausalLM, type CausalLM, type ParamRole, type PretrainedModel, type RawConfig, type WeightSource } from './types.js';

export type WeightDType = 'f32' | 'bf16';

export interface LoadOptions {
  /** Dtype of projection matrices and embeddings (default f32). */
  dtype?: WeightDType;
  /** Receives non-fatal findings (checkpoint tensors the model does not use); default: printed on stderr. */
  onWarning?: (message: string) => void;
}

function roleDType(role: ParamRole, dtype: WeightDType): WeightDType {
  return role === 'vector' ? 'f32' : dtype;
}

/** A tensor in `dtype`, kept out of any enclosing tidy() scope (parameters live until the model is disposed). */
function asParam(t: Tensor, dtype: WeightDType): Tensor {
  if (t.dtype === dtype) return keep(t);
  const c = castTo(t, dtype);
  t.dispose();
  return keep(c);
}

/** Tensors of a checkpoint, shape-checked and converted per role; remembers which ones were read. */
class CheckpointWeights implements WeightSource {
  /** Parameter names read, and the checkpoint tensors they came from. */
  readonly used = new Set<string>();
  readonly usedSource = new Set<string>();
  /** `prefix.` when the checkpoint stores the base model's tensors without the architecture's base prefix. */
  private readonly strip: string | null;

  constructor(
    private readonly src: TensorSource,
    private readonly dtype: WeightDType,
    /** The config file the expected shapes come from (for error messages). */
    private readonly configSource: string,
    basePrefix?: string,
  ) {
    const p = basePrefix ? `${basePrefix}.` : null;
    this.strip = p && !src.names().some((n) => n.startsWith(p)) ? p : null;
  }

  /** The checkpoint's name for parameter `name`. */
  private source(name: string): string {
    return this.strip && name.startsWith(this.strip) ? name.slice(this.strip.length) : name;
  }

  has(name: string): boolean {
    return this.src.has(this.source(name));
  }

  get(param: string, shape: readonly number[], role: ParamRole): Tensor {
    const name = this.source(param);
    if (!this.src.has(name)) {
      const where = this.src.names().length ? '' : ' (it holds no tensors)';
      throw new Error(`loadModel: tensor "${name}" (expected shape [${shape.join(', ')}]) is missing from the checkpoint${where}; config: ${this.configSource}`);
    }
    const info = this.src.info(name);
    if (info.shape.join() !== shape.join())
      throw new Error(
        `loadModel: tensor "${name}" in ${info.file} has shape [${info.shape.join(', ')}], but ${this.configSource} implies [${shape.join(', ')}]`,
      );
    const data = this.src.read(name);
    let t: Tensor;
    if (info.dtype === 'F32') t = fromStorage(data as Float32Array, shape, 'f32');
    else if (info.dtype === 'BF16') t = fromStorage(data as Uint16Array, shape, 'bf16');
    else if (info.dtype === 'F16') t = fromStorage(data as Uint16Array, shape, 'f16');
    else throw new Error(`loadModel: tensor "${name}" in ${info.file} has dtype ${info.dtype}; model weights must be F32, F16 or BF16`);
    this.used.add(param);
    this.usedSource.add(name);
    return asParam(t, roleDType(role, this.dtype));
  }
}

/** Random weights (normal, std 0.02; norm weights 1, biases 0) for benchmarks and tests. */
class RandomWeights implements WeightSource {
  constructor(
    private readonly gen: Generator,
    private readonly dtype: WeightDType,
  ) {}

  has(): boolean {
    return true;
  }

  get(name: string, shape: readonly number[], role: ParamRole): Tensor {
    const t = role === 'vector' ? full(shape, name.endsWith('.bias') ? 0 : 1) : randn(shape, 0.02, 0, this.gen);
    return asParam(t, roleDType(role, this.dtype));
  }
}

/**
 * Builds with `build`, then checks the module tree against what was read: every parameter must be a tensor it
 * read (same name) and vice versa; checkpoint tensors nobody read are reported unless `ignore` matches them.
 */
function buildChecked<M extends PretrainedModel>(
  src: TensorSource,
  configSource: string,
  build: (w: WeightSource) => M,
  ignore: readonly RegExp[],
  dtype: WeightDType,
  onWarning: (m: string) => void,
  basePrefix?: string,
): M {
  const weights = new CheckpointWeights(src, dtype, configSource, basePrefix);
  const model = build(weights);
  const params = new Set(model.namedParameters().map(([n]) => n));
  const unnamed = [...weights.used].filter((n) => !params.has(n));
  const unread = [...params].filter((n) => !weights.used.has(n));
  if (unnamed.length || unread.length)
    throw new Error(`loadModel: the ${model.constructor.name} module tree does not match the tensors it loaded (read but not a parameter: ${unnamed.join(', ') || 'none'}; parameter never read: ${unread.join(', ') || 'none'})`);
  const unexpected = src.names().filter((n) => !weights.usedSource.has(n) && !ignore.some((r) => r.test(n)));
  if (unexpected.length)
    onWarning(`${unexpected.length} checkpoint tensor(s) not used by ${model.constructor.name}: ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', …' : ''}`);
  return model;
}

/** A llama2.c model file inside `dir` (not a tokenizer), if there is one. */
function llama2cFileIn(dir: string): string | undefined {
  return readdirSync(dir)
    .filter(isLlama2cModelFile)
    .sort()
    .map((f) => join(dir, f))[0];
}

/**
 * Loads a model: `path` is a Hugging Face folder (config.json + model.safetensors or a shard index), a llama2.c
 * `.bin` file, or a folder holding one (and no config.json). The architecture comes from config.json
 * `model_type` (see `registry.ts`); every expected tensor must be present with its exact shape.
 */
export function loadModel(path: string, opts: LoadOptions = {}): PretrainedModel {
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new Error(`loadModel: dtype must be 'f32' or 'bf16', got '${String(dtype)}'`);
  const onWarning = opts.onWarning ?? ((m: string) => process.stderr.write(`peftjs: ${m}\n`));
  if (!existsSync(path)) throw new Error(`loadModel: ${path} does not exist`);
  const isDir = statSync(path).isDirectory();
  const configPath = join(path, 'config.json');
  const bin = isDir ? (existsSync(configPath) ? undefined : llama2cFileIn(path)) : path;
  if (bin !== undefined) {
    if (!bin.endsWith('.bin')) throw new Error(`loadModel: ${path} is neither a checkpoint folder nor a llama2.c .bin file`);
    const file = Llama2cFile.open(bin);
    try {
      return buildChecked(file, `the header of ${bin}`, (w) => llama2cModel(file, w), [], dtype, onWarning);
    } finally {
      file.close();
    }
  }
  if (!existsSync(configPath)) throw new Error(`loadModel: ${path} has no config.json (and no llama2.c .bin model file)`);
  const cfg = new ConfigReader(readConfigJson(configPath), configPath);
  const arch = architectureFor(cfg.string('model_type'), configPath);
  const src = openCheckpointTensors(path);
  try {
    return buildChecked(src, configPath, (w) => arch.build(cfg, w), arch.ignoreUnexpected ?? [], dtype, onWarning, arch.basePrefix);
  } finally {
    src.close();
  }
}

/** {@link loadModel} for a decoder-only language model (errors if the checkpoint is another kind). */
export function loadCausalLM(path: string, opts: LoadOptions = {}): CausalLM {
  const m = loadModel(path, opts);
  if (!isCausalLM(m)) {
    m.dispose();
    throw new Error(`loadCausalLM: ${path} holds a ${m.constructor.name}, not a causal language model`);
  }
  return m;
}

/** A model of the architecture `raw.model_type` names with random weights (benchmarks, tests). */
export function randomModel(raw: RawConfig, opts: { seed?: number; dtype?: WeightDType } = {}): PretrainedModel {
  const cfg = new ConfigReader(raw, 'config');
  return architectureFor(cfg.string('model_type'), 'config').build(cfg, new RandomWeights(new Generator(opts.seed ?? 0), opts.dtype ?? 'f32'));
}
