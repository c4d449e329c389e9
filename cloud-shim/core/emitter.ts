import { K, type Logger } from '../../coordinator/core/log.js'

type Listener = (...args: never[]) => void

/**
 * Typed events whose listeners cannot hurt the emitter: a listener that throws is logged and the
 * others still run (a registry change is already committed when its events go out, so an error
 * must not reach the caller that made the change).
 */
export class Emitter<Events extends { [E in keyof Events]: Listener }> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>()
  readonly #log: Logger

  constructor(log: Logger) {
    this.#log = log
  }

  /** Returns the function that removes the listener. */
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, (set = new Set()))
    set.add(listener)
    return () => set.delete(listener)
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        ;(listener as (...a: Parameters<Events[E]>) => void)(...args)
      } catch (err) {
        this.#log.error({ event: String(event), [K.err]: (err as Error).message }, 'event listener failed')
      }
    }
  }
}
