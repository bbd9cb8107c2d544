/**
 * Thread count of the reference backend. JavaScript runs it on one thread; the number is only recorded so
 * `setNumThreads`/`getNumThreads` behave the same on both backends.
 */
let threads = 1;

/** Records the requested thread count (a positive integer); the reference kernels always run on one thread. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: n must be a positive integer, got ${n}`);
  threads = n;
}

/** The last count given to {@link setNumThreads} (1 by default). */
export function getNumThreads(): number {
  return threads;
}
