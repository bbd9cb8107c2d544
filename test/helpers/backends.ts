/**
 * The backends a test should run on: always `reference`, and `native` — which must load unless
 * PEFTJS_ALLOW_NO_NATIVE=1 (so a broken addon build fails the suite instead of silently testing less).
 */
import { nativeAvailable, type BackendName } from '../../src/index.js';

export function backends(): BackendName[] {
  if (nativeAvailable()) return ['reference', 'native'];
  if (process.env.PEFTJS_ALLOW_NO_NATIVE === '1') return ['reference'];
  throw new Error('the native addon did not load: run `npm run build:native` (or set PEFTJS_ALLOW_NO_NATIVE=1)');
}
