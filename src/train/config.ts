/**
 * The training configuration: one schema (zod) that validates a YAML file, command-line flags and the programmatic
 * `train(config)` alike. Every field is also a flag: `seqLen` ↔ `--seq-len`; YAML may spell keys camelCase,
 * snake_case or kebab-case. Errors name the field (and its flag).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const int = (min = 1) => z.number().int().min(min);
const files = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const trainConfigSchema = z
  .object({
    model: z.string().min(1).describe('base checkpoint folder (HF or llama2.c)'),
    data: files.describe('training data file(s): .jsonl .json .csv .txt'),
    evalData: files.optional().describe('evaluation data file(s) (default: split from data)'),
    output: z.string().min(1).describe('output folder (adapter, checkpoints, metrics.jsonl, curve)'),
    format: z.enum(['auto', 'jsonl', 'json', 'csv', 'text']).default('auto').describe('data file format'),
    skipMalformed: z.boolean().default(false).describe('skip malformed records (counted) instead of failing'),
    chatTemplate: z.string().optional().describe('Jinja chat template (or its file) for `messages` records (default: the tokenizer\'s)'),
    lossOn: z.enum(['completion', 'all']).default('completion').describe('loss on completion/assistant tokens only, or all'),
    seqLen: int().default(256).describe('tokens per training row'),
    packing: z.boolean().default(true).describe('pack examples into full rows (else pad each example)'),
    evalSplit: z.number().min(0).default(0.1).describe('eval fraction (<1) or count (>=1) split from data'),
    taskField: z.string().min(1).optional().describe('record field naming each example\'s task: multi-task training (MTLoRA, Poly, multitask prompt tuning)'),
    taskTemperature: z.number().positive().default(1).describe('task sampling temperature: p ∝ rows^(1/T) (1: by task size; large: uniform)'),
    method: z.string().default('lora').describe('PEFT method (lora, dora, ia3, prompt_tuning, …: any registered peft_type)'),
    methodConfig: z.record(z.string(), z.unknown()).default({}).describe('extra HF PEFT config fields for the method (JSON on the command line)'),
    r: int().default(8).describe('LoRA rank'),
    alpha: z.number().positive().default(16).describe('LoRA alpha (scale = alpha / r)'),
    loraDropout: z.number().min(0).max(1).default(0).describe('dropout on the LoRA input'),
    targetModules: z.array(z.string().min(1)).min(1).default(['q_proj', 'v_proj']).describe('module names to adapt (comma list)'),
    lr: z.number().positive().default(2e-4).describe('peak learning rate'),
    loraplusLrRatio: z.number().positive().default(1).describe('LoRA+: learning-rate multiplier for the B matrices'),
    weightDecay: z.number().min(0).default(0).describe('AdamW weight decay'),
    beta1: z.number().min(0).max(1).default(0.9).describe('AdamW beta1'),
    beta2: z.number().min(0).max(1).default(0.999).describe('AdamW beta2'),
    eps: z.number().positive().default(1e-8).describe('AdamW epsilon'),
    schedule: z.enum(['linear', 'cosine', 'constant']).default('linear').describe('decay after warmup'),
    warmupSteps: int(0).default(0).describe('linear warmup steps'),
    warmupRatio: z.number().min(0).max(1).default(0).describe('warmup as a fraction of the steps (if warmupSteps is 0)'),
    minLrRatio: z.number().min(0).max(1).default(0).describe('decay floor as a fraction of lr'),
    epochs: z.number().positive().default(1).describe('passes over the training rows'),
    maxSteps: int().optional().describe('optimizer steps (overrides epochs)'),
    batchSize: int().default(8).describe('rows per micro-batch'),
    gradAccum: int().default(1).describe('micro-batches per optimizer step'),
    maxGradNorm: z.number().min(0).default(1).describe('global gradient-norm clip (0: off)'),
    seed: int(0).default(42).describe('seed for LoRA init, shuffling and dropout'),
    evalEvery: int(0).default(0).describe('evaluate every N steps (0: only at the end)'),
    evalBatches: int(0).default(0).describe('limit evaluation to N batches (0: all)'),
    evalGenerate: int(0).default(16).describe('exact-match eval: greedy-generate this many references (0: off)'),
    maxNewTokens: int().default(64).describe('longest completion generated for exact-match eval'),
    earlyStoppingMetric: z.enum(['none', 'eval_loss', 'eval_exact_match']).default('none').describe('metric that stops training'),
    earlyStoppingPatience: int().default(3).describe('evaluations without improvement before stopping'),
    earlyStoppingMinDelta: z.number().min(0).default(0).describe('smallest change that counts as improvement'),
    saveEvery: int(0).default(0).describe('checkpoint every N steps (0: only at the end)'),
    saveTotalLimit: int().default(2).describe('checkpoints kept'),
    resume: z.union([z.boolean(), z.string().min(1)]).default(false).describe('resume from the latest checkpoint in output (or a checkpoint folder)'),
    precision: z.enum(['auto', 'fp32', 'bf16']).default('auto').describe('bf16: frozen base weights in bf16 (auto: bf16 where the CPU has AVX512-BF16)'),
    gradientCheckpointing: z.boolean().default(false).describe('recompute decoder layers in backward (less memory)'),
    threads: int().optional().describe('compute threads'),
    logEvery: int().default(1).describe('write a metrics line every N steps'),
    progress: z.boolean().default(true).describe('show a progress bar'),
  })
  .strict();

/** A complete, validated configuration. */
export type TrainConfig = z.output<typeof trainConfigSchema>;
/** What a caller writes: required fields plus any overrides. */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

export type FieldName = keyof TrainConfig;

export class ConfigError extends Error {}

/** `seqLen` → `seq-len`. */
export function flagName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `seq_len` / `seq-len` / `seqLen` → `seqLen`. */
export function fieldName(key: string): string {
  return key.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Validates `input` (keys in any spelling); `where` (e.g. the YAML file) prefixes errors. */
export function validateConfig(input: Record<string, unknown>, where = 'config'): TrainConfig {
  const normalized = Object.fromEntries(Object.entries(input).map(([k, v]) => [fieldName(k), v]));
  const r = trainConfigSchema.safeParse(normalized);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    const field = i.path.join('.');
    const top = String(i.path[0] ?? '');
    const got = i.path.length ? JSON.stringify(i.path.reduce<unknown>((o, k) => (o as Record<PropertyKey, unknown>)?.[k as PropertyKey], normalized)) : '';
    return `field "${field}" (--${flagName(top)}): ${i.message}${got !== undefined && got !== '' ? ` (got ${got})` : ''}`;
  });
  throw new ConfigError(`${where}: ${lines.join('; ')}`);
}

/** Reads a YAML (or JSON) config file into raw fields. */
export function readConfigFile(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${path}: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path}: expected a mapping of config fields`);
  return value as Record<string, unknown>;
}

type FlagKind = 'boolean' | 'number' | 'string' | 'list' | 'boolOrString' | 'json';

/** How each field is written on the command line, read from the schema. */
function flagKind(field: string): FlagKind {
  let t = trainConfigSchema.shape[field as FieldName] as unknown as { _zod: { def: { type: string; innerType?: unknown; options?: { _zod: { def: { type: string } } }[] } } };
  while (t._zod.def.type === 'default' || t._zod.def.type === 'optional') t = t._zod.def.innerType as typeof t;
  const type = t._zod.def.type;
  if (type === 'boolean') return 'boolean';
  if (type === 'number') return 'number';
  if (type === 'array') return 'list';
  if (type === 'record') return 'json';
  if (type === 'union') {
    const kinds = t._zod.def.options!.map((o) => o._zod.def.type);
    return kinds.includes('boolean') ? 'boolOrString' : 'list';
  }
  return 'string';
}

/**
 * Parses `--field value` flags (kebab-case field names; `--flag`, `--no-flag` or `--flag=false` for booleans;
 * lists comma-separated) into raw fields. `--config FILE` is returned separately.
 */
export function parseFlags(args: readonly string[]): { config?: string; fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}" (options are --name value)`);
    let [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new ConfigError(`--${name} needs a value`);
      i++;
      return v;
    };
    if (name === 'config') {
      config = takeValue();
      continue;
    }
    let negated = false;
    if (name.startsWith('no-') && !(fieldName(name) in trainConfigSchema.shape)) {
      negated = true;
      name = name.slice(3);
    }
    const field = fieldName(name);
    if (!(field in trainConfigSchema.shape)) throw new ConfigError(`unknown option --${name}`);
    const kind = flagKind(field);
    if (kind === 'boolean' || kind === 'boolOrString') {
      const next = inline ?? (args[i + 1]?.startsWith('--') === false ? args[i + 1] : undefined);
      if (negated) fields[field] = false;
      else if (next === 'true' || next === 'false') {
        fields[field] = next === 'true';
        if (inline === undefined) i++;
      } else if (kind === 'boolOrString' && next !== undefined) {
        fields[field] = next;
        if (inline === undefined) i++;
      } else fields[field] = true;
      continue;
    }
    const v = takeValue();
    if (kind === 'json') {
      try {
        fields[field] = JSON.parse(v);
      } catch (e) {
        throw new ConfigError(`--${name}: expected JSON, got "${v}" (${(e as Error).message})`);
      }
    } else if (kind === 'number') {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`--${name}: expected a number, got "${v}"`);
      fields[field] = n;
    } else if (kind === 'list') {
      const items = v.split(',').map((s) => s.trim()).filter(Boolean);
      fields[field] = field === 'data' || field === 'evalData' ? (items.length === 1 ? items[0] : items) : items;
    } else fields[field] = v;
  }
  return { config, fields };
}

/** Config from a file and flags (flags win); validated. */
export function configFromArgs(args: readonly string[]): TrainConfig {
  const { config, fields } = parseFlags(args);
  const fromFile = config ? readConfigFile(config) : {};
  const merged = { ...Object.fromEntries(Object.entries(fromFile).map(([k, v]) => [fieldName(k), v])), ...fields };
  return validateConfig(merged, config ? `${config} + flags` : 'flags');
}

/** One line per field: `--seq-len <number>  tokens per training row (default 256)`, for `--help`. */
export function flagHelp(): string {
  const defaults = trainConfigSchema.partial({ model: true, data: true, output: true }).parse({});
  return Object.entries(trainConfigSchema.shape)
    .map(([field, s]) => {
      const kind = flagKind(field);
      const value = { boolean: '', number: ' <n>', string: ' <s>', list: ' <a,b>', boolOrString: ' [path]', json: ' <json>' }[kind];
      const d = (defaults as Record<string, unknown>)[field];
      const def = d === undefined ? '' : ` (default ${Array.isArray(d) ? d.join(',') : String(d)})`;
      return `  --${(flagName(field) + value).padEnd(30)} ${s.description ?? ''}${def}`;
    })
    .join('\n');
}
