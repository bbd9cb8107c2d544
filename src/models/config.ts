/** Reading config.json: typed field access whose errors name the file and the field. */
import { readFileSync } from 'node:fs';
import type { ModelConfig, RawConfig } from './types.js';

/** Reads `path` as a JSON object; errors name the file. */
export function readConfigJson(path: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path} must hold a JSON object`);
  return value as RawConfig;
}

/** Typed getters over a raw config; `source` (the file) is named in every error. */
export class ConfigReader {
  constructor(
    readonly raw: RawConfig,
    readonly source: string,
  ) {}

  private fail(field: string, want: string): never {
    const got = this.raw[field] === undefined ? 'it is missing' : `got ${JSON.stringify(this.raw[field])}`;
    throw new Error(`${this.source}: field "${field}" must be ${want}; ${got}`);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  /** A positive integer (the first of `fields` present, for configs that name it differently); `fallback` when absent. */
  int(fields: string | readonly string[], fallback?: number): number {
    const names = typeof fields === 'string' ? [fields] : fields;
    const field = names.find((f) => this.has(f));
    if (field === undefined) {
      if (fallback !== undefined) return fallback;
      return this.fail(names.join('" or "'), 'a positive integer');
    }
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return this.fail(field, 'a positive integer');
    return v;
  }

  /** A finite number; `fallback` when absent. */
  number(field: string, fallback?: number): number {
    if (!this.has(field)) return fallback !== undefined ? fallback : this.fail(field, 'a number');
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(field, 'a number');
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    if (!this.has(field)) return fallback;
    const v = this.raw[field];
    if (typeof v !== 'boolean') return this.fail(field, 'true or false');
    return v;
  }

  string(field: string): string {
    const v = this.raw[field];
    if (typeof v !== 'string' || v === '') return this.fail(field, 'a non-empty string');
    return v;
  }

  /** A token id or null when absent. */
  tokenId(field: string): number | null {
    if (!this.has(field)) return null;
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) return this.fail(field, 'a token id');
    return v;
  }

  /** A token id, a list of them, or nothing (→ []). */
  tokenIds(field: string): number[] {
    if (!this.has(field)) return [];
    const v = this.raw[field];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) return this.fail(field, 'a token id or a list of them');
    return list as number[];
  }

  /** A nested object or null when absent. */
  object(field: string): RawConfig | null {
    if (!this.has(field)) return null;
    const v = this.raw[field];
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(field, 'an object');
    return v as RawConfig;
  }

  /** A reader over nested object `field` (errors say `file: field.sub`). */
  nested(field: string): ConfigReader | null {
    const o = this.object(field);
    return o && new ConfigReader(o, `${this.source}: "${field}"`);
  }

  /** The special-token fields every architecture shares. */
  tokens(): Pick<ModelConfig, 'bosTokenId' | 'eosTokenIds' | 'padTokenId'> {
    return { bosTokenId: this.tokenId('bos_token_id'), eosTokenIds: this.tokenIds('eos_token_id'), padTokenId: this.tokenId('pad_token_id') };
  }
}
