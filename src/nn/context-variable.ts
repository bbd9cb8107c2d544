/**
 * A value set for the duration of a call (a dynamic scope): how a model's forward hands layers what their
 * `forward(x)` signature does not carry — the sequence context, the batch's task ids.
 */
export class ContextVariable<T> {
  constructor(private value: T) {}

  /** Runs `fn` with the variable set to `value`; the previous value is back afterwards, even if `fn` throws. */
  with<R>(value: T, fn: () => R): R {
    const previous = this.value;
    this.value = value;
    try {
      return fn();
    } finally {
      this.value = previous;
    }
  }

  /** The value in effect. */
  get(): T {
    return this.value;
  }
}
