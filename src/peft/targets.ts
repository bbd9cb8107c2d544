/**
 * Which modules an adapter wraps — HF PEFT's rules (`check_target_module_exists`, `get_pattern_key`,
 * `_maybe_include_all_linear_layers`, `_set_trainable`), applied to dotted module names:
 * - `target_modules` list: a name matches when it equals an entry or ends with `.<entry>`;
 * - `target_modules` string: a regex that must match the whole name; `"all-linear"`: every linear layer except
 *   the output head;
 * - `exclude_modules`: the same list / full-regex forms, checked first;
 * - `layers_to_transform` (+ `layers_pattern`): only names whose layer index (the number after
 *   `.<pattern>.`, or after the first `.<segment>.` when no pattern is given) is listed;
 * - modules named in `modules_to_save` are never targeted;
 * - `rank_pattern` / `alpha_pattern` keys are regexes matched against the end of the name at a `.` boundary.
 */
import { Linear, type Module } from '../nn/index.js';
import type { PeftConfigBase } from './config.js';
import { isTunerLayer } from './tuner.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';

/** The `target_modules` shorthand for every linear layer but the output head. */
export const ALL_LINEAR = 'all-linear';

/** Python `re.fullmatch(pattern, s)`. */
function fullMatch(pattern: string, s: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(s);
}

export type TargetConfig = Pick<PeftConfigBase, 'target_modules' | 'exclude_modules' | 'layers_to_transform' | 'layers_pattern' | 'modules_to_save'>;

/**
 * Whether module `key` is targeted: true, false, or 'excluded' (matched `exclude_modules` or is a
 * `modules_to_save` module). `config.target_modules` must already be resolved (no `"all-linear"`).
 */
export function checkTargetModuleExists(config: TargetConfig, key: string): boolean | 'excluded' {
  const ex = config.exclude_modules;
  if (ex && (typeof ex === 'string' ? fullMatch(ex, key) : ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`)))) return 'excluded';
  if (config.modules_to_save?.some((m) => new RegExp(`(^|.*\\.)${m}($|\\..*)`).test(key))) return 'excluded';
  const tm = config.target_modules;
  if (tm === null) return false;
  if (typeof tm === 'string') return fullMatch(tm, key);
  if (tm.includes(key)) return true;
  if (!tm.some((t) => key.endsWith(`.${t}`))) return false;
  const indexes = config.layers_to_transform;
  if (indexes === null || (Array.isArray(indexes) && indexes.length === 0)) return true;
  const patterns = config.layers_pattern;
  let m: RegExpMatchArray | null = null;
  // The lazy `.*?` takes the first numbered segment (the layer), not a nested one (an expert index).
  if (patterns === null || patterns.length === 0) m = key.match(/^.*?\.[^.]*\.(\d+)\./);
  else
    for (const p of typeof patterns === 'string' ? [patterns] : patterns) {
      m = key.match(new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`));
      if (m) break;
    }
  if (!m) return false;
  const layer = Number(m[1]);
  return typeof indexes === 'number' ? layer === indexes : indexes.includes(layer);
}

/** The first key of `patternKeys` (a regex) that matches the end of `key` at a `.` boundary, else `key` itself. */
export function getPatternKey(patternKeys: Iterable<string>, key: string): string {
  for (const p of patternKeys) if (new RegExp(`^(.*\\.)?(${p})$`).test(key)) return p;
  return key;
}

/** Whether `m` is a linear layer for `"all-linear"` (a plain Linear, or an adapter layer wrapping one). */
function isLinear(m: Module): boolean {
  return m instanceof Linear || (isTunerLayer(m) && m.baseLayer instanceof Linear);
}

/** Names of modules inside adapter layers (`q_proj.base_layer`, `q_proj.lora_A.default`): never targets. */
function adapterInternals(model: Module): Set<string> {
  const inside = new Set<string>();
  for (const [name, m] of model.namedModules())
    if (isTunerLayer(m) || m instanceof ModulesToSaveWrapper)
      for (const [sub] of m.namedModules(name)) if (sub !== name) inside.add(sub);
  return inside;
}

export interface TargetOptions {
  /** The output head excluded by `"all-linear"` (default: `lm_head` when the model has it). */
  outputHead?: string | null;
}

/** Every linear layer of `model` but the output head (sorted names): what `"all-linear"` stands for. */
export function allLinearNames(model: Module, opts: TargetOptions = {}): string[] {
  const inside = adapterInternals(model);
  const names = model.namedModules().filter(([n, m]) => n && !inside.has(n) && isLinear(m)).map(([n]) => n);
  const head = opts.outputHead !== undefined ? opts.outputHead : names.includes('lm_head') ? 'lm_head' : null;
  return names.filter((n) => n !== head).sort();
}

/** A readable sample of the model's module names for error messages. */
export function moduleNameSample(model: Module, max = 40): string {
  const names = model.namedModules().map(([n]) => n).filter(Boolean);
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, … (${names.length} modules in all)` : shown;
}

/**
 * The names of the modules `config` targets in `model`, in module order. Throws when it targets none, listing the
 * model's module names. `"all-linear"` must have been resolved with {@link allLinearNames} first.
 */
export function findTargetModules(model: Module, config: TargetConfig): string[] {
  const inside = adapterInternals(model);
  const found: string[] = [];
  let excluded = 0;
  for (const [name] of model.namedModules()) {
    if (!name || inside.has(name)) continue;
    const r = checkTargetModuleExists(config, name);
    if (r === true) found.push(name);
    else if (r === 'excluded' && checkTargetModuleExists({ ...config, exclude_modules: null, modules_to_save: null }, name) === true) excluded++;
  }
  if (found.length === 0) {
    const what = `target_modules ${JSON.stringify(config.target_modules)}${config.layers_to_transform !== null ? ` (layers_to_transform ${JSON.stringify(config.layers_to_transform)})` : ''}`;
    const why = excluded ? ` (${excluded} matching module(s) were excluded by exclude_modules / modules_to_save)` : '';
    throw new Error(`${what} matched no module of the model${why}. The model's modules: ${moduleNameSample(model)}`);
  }
  return found;
}

/**
 * The modules `modules_to_save` selects (PEFT `_set_trainable`: a plain `endsWith`, so `classifier` also selects
 * `pre_classifier`), outermost first; modules inside adapter layers are skipped.
 */
export function findModulesToSave(model: Module, names: readonly string[]): string[] {
  const inside = adapterInternals(model);
  const out: string[] = [];
  for (const [name] of model.namedModules()) {
    if (!name || inside.has(name) || out.some((o) => name.startsWith(`${o}.`))) continue;
    if (names.some((t) => name.endsWith(t))) out.push(name);
  }
  return out;
}
