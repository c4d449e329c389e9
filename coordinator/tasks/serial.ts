/**
 * Runs operations one at a time per key (per task name) while different keys run concurrently:
 * an install, stop or remove of one task never interleaves with another operation on it.
 */
export class KeyedSerial {
  readonly #tails = new Map<string, Promise<unknown>>()

  /** Runs `fn` once every earlier operation on `key` has settled; `before` runs first, then. */
  async run<T>(key: string, fn: () => Promise<T>, before: () => void = () => {}): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).catch(() => {}).then(() => {
      before()
      return fn()
    })
    const settled = run.catch(() => {})
    this.#tails.set(key, settled)
    try {
      return await run
    } finally {
      if (this.#tails.get(key) === settled) this.#tails.delete(key)
    }
  }

  /** Resolves once every operation queued so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled(this.#tails.values())
  }
}
