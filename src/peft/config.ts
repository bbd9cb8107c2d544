/**
 * Adapter configs as `adapter_config.json` holds them: HF PEFT field names and values. Each method declares its
 * fields with their PEFT defaults (the schema); parsing fills defaults, validates, and ignores keys the schema
 * does not know (written by newer PEFT versions, PEFT issues #1979 / #2275) with one warning listing them.
 */
import { peftWarn } from './warn.js';

/** `target_modules` / `exclude_modules`: a list of names (suffix match), a regex string (full match), or null. */
export type ModuleSelector = string[] | string | null;

/** The fields every PEFT config has, plus the module-selection fields the injection machinery reads. */
export interface PeftConfigBase {
  peft_type: string;
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  auto_mapping: unknown;
  target_modules: ModuleSelector;
  exclude_modules: ModuleSelector;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  modules_to_save: string[] | null;
}

/** PeftConfigMixin's fields and defaults (`peft_version` is written by newer PEFT and kept when present). */
export const BASE_DEFAULTS = {
  auto_mapping: null,
  base_model_name_or_path: null,
  revision: null,
  task_type: null,
  inference_mode: false,
} as const;

/** Fields that are known but have no default worth writing (kept only when the input has them). */
const OPTIONAL_KNOWN = ['peft_version'];

export type ConfigCheck = (value: unknown) => string | null;

/** Small validators: each returns an error description or null. */
export const is = {
  bool: ((v) => (typeof v === 'boolean' ? null : 'must be true or false')) as ConfigCheck,
  int: (min: number): ConfigCheck => (v) => (Number.isInteger(v) && (v as number) >= min ? null : `must be an integer ≥ ${min}`),
  num: ((v) => (typeof v === 'number' && Number.isFinite(v) ? null : 'must be a number')) as ConfigCheck,
  oneOf: (...xs: unknown[]): ConfigCheck => (v) => (xs.includes(v) ? null : `must be one of ${xs.map((x) => JSON.stringify(x)).join(', ')}`),
  nullable: (c: ConfigCheck): ConfigCheck => (v) => (v === null ? null : c(v)),
  strOrList: ((v) => (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')) ? null : 'must be a string or a list of strings')) as ConfigCheck,
  list: ((v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? null : 'must be a list of strings')) as ConfigCheck,
  intOrList: ((v) => (Number.isInteger(v) || (Array.isArray(v) && v.every((x) => Number.isInteger(x))) ? null : 'must be an integer or a list of integers')) as ConfigCheck,
  numberMap: ((v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'number') ? null : 'must be an object of numbers') as ConfigCheck,
};

export const BASE_CHECKS: Record<string, ConfigCheck> = {
  task_type: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
  base_model_name_or_path: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
  revision: is.nullable((v) => (typeof v === 'string' ? null : 'must be a string')),
  inference_mode: is.bool,
  target_modules: is.nullable(is.strOrList),
  exclude_modules: is.nullable(is.strOrList),
  layers_to_transform: is.nullable(is.intOrList),
  layers_pattern: is.nullable(is.strOrList),
  modules_to_save: is.nullable(is.list),
};

/**
 * Builds a config from `raw`: the schema's defaults overridden by the known keys of `raw` (deep-copied), each
 * checked; unknown keys are dropped with one warning. `where` names the source in messages.
 */
export function parseConfigFields<C extends PeftConfigBase>(
  peftType: string,
  raw: Record<string, unknown>,
  defaults: Record<string, unknown>,
  checks: Record<string, ConfigCheck>,
  where: string,
): C {
  if (raw.peft_type !== undefined && raw.peft_type !== peftType)
    throw new Error(`${where}: peft_type is ${JSON.stringify(raw.peft_type)}, expected "${peftType}"`);
  const out: Record<string, unknown> = structuredClone({ ...BASE_DEFAULTS, ...defaults });
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'peft_type') continue;
    if (!(k in out) && !OPTIONAL_KNOWN.includes(k)) {
      unknown.push(k);
      continue;
    }
    const problem = checks[k]?.(v) ?? null;
    if (problem) throw new Error(`${where}: ${k} ${problem}, got ${JSON.stringify(v)}`);
    out[k] = structuredClone(v);
  }
  if (unknown.length)
    peftWarn(
      `${where}: ignoring ${unknown.length} key(s) unknown to peftjs's ${peftType} config (probably written by a newer PEFT): ${unknown.sort().join(', ')}`,
    );
  out.peft_type = peftType;
  return out as C;
}

/** A JSON value with object keys sorted recursively (PEFT writes `json.dumps(..., sort_keys=True)`). */
export function sortKeysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeysDeep);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeysDeep((v as Record<string, unknown>)[k])]));
  return v;
}

/** The JSON text PEFT writes for a config: sorted keys, two-space indent. */
export function configToJson(config: PeftConfigBase): string {
  return JSON.stringify(sortKeysDeep(config), null, 2);
}
