/**
 * Memory scopes. `tidy(fn)` disposes every tensor created while `fn` runs, except the tensors it returns and those
 * passed to `keep()`; kept and returned tensors move to the enclosing scope. Outside any scope tensors live until
 * `dispose()` (or, for stray ones, the garbage collector).
 */
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];

/** @internal Called by the Tensor constructor. */
export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempts `t` from disposal by the enclosing scopes; returns it. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  for (const s of scopes) s.delete(t);
  return t;
}

/** Tensors found in a value returned from a scope: a tensor, or arrays / plain objects of them. */
function collect(value: unknown, out: Set<Tensor>): void {
  if (value && typeof value === 'object') {
    if ('box' in value && 'shape' in value) out.add(value as Tensor);
    else if (Array.isArray(value)) for (const v of value) collect(v, out);
    else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out);
  }
}

/**
 * Runs `fn` and disposes every tensor it created that is neither returned nor kept.
 * @example const loss = tidy(() => { const l = model.loss(batch); l.backward(); return l.item(); });
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy(): the function must be synchronous');
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}
