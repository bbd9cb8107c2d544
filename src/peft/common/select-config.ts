/** Config checks the LoRA-variant methods share (PEFT's `__post_init__` rules on module selection). */
import type { PeftConfigBase } from '../config.js';

/** The module-selection fields PEFT configs carry, with their defaults. */
export const TARGET_DEFAULTS = {
  target_modules: null,
  exclude_modules: null,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
} as const;

/** PEFT's post-init checks on `target_modules` / `layers_to_transform` / `layers_pattern`. */
export function checkTargets(c: PeftConfigBase, where: string): void {
  if (typeof c.target_modules === 'string' && c.layers_to_transform !== null)
    throw new Error(`${where}: layers_to_transform cannot be used when target_modules is a string (regex)`);
  if (typeof c.target_modules === 'string' && c.layers_pattern !== null)
    throw new Error(`${where}: layers_pattern cannot be used when target_modules is a string (regex)`);
  if (c.layers_pattern && c.layers_to_transform === null)
    throw new Error(`${where}: when layers_pattern is specified, layers_to_transform must also be specified`);
  if (c.target_modules === null) throw new Error(`${where}: target_modules must be set (a list of module names, a regex, or "all-linear")`);
}

/** A check that a number lies in [0, 1). */
export const probability = (v: unknown): string | null => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'must be a number in [0, 1)');
