/** Temporary folders for tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs `body` in a fresh temporary folder named after `prefix`, removed afterwards (once `body`'s promise settles). */
export function inTempDir<R>(prefix: string, body: (dir: string) => R): R {
  const dir = mkdtempSync(join(tmpdir(), `peftjs-${prefix}-`));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  let result: R;
  try {
    result = body(dir);
  } catch (e) {
    remove();
    throw e;
  }
  if (result instanceof Promise) return result.finally(remove) as R;
  remove();
  return result;
}
