import type { Logger } from '../core/log.js'

/**
 * Logs dropped messages once per burst instead of once per message: the first drop after a quiet
 * spell is logged at once, later ones are summed and logged as one line per interval. A queue that
 * overflows for a week writes a line every few seconds, not millions (which would wear the SD card
 * the drops were meant to protect).
 */
export class DropReporter {
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #pending = new Map<string, number>()
  #lastAt = -Infinity
  #timer: NodeJS.Timeout | undefined

  constructor(log: Logger, intervalMs: number) {
    this.#log = log
    this.#intervalMs = intervalMs
  }

  /** Adds counts by reason; zero counts are ignored. */
  record(counts: Readonly<Record<string, number>>): void {
    let any = false
    for (const [reason, n] of Object.entries(counts)) {
      if (n <= 0) continue
      this.#pending.set(reason, (this.#pending.get(reason) ?? 0) + n)
      any = true
    }
    if (!any || this.#timer !== undefined) return
    const wait = this.#lastAt + this.#intervalMs - performance.now()
    if (wait <= 0) {
      this.#emit()
      return
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#emit()
    }, wait)
    this.#timer.unref()
  }

  /** Logs what is still pending and stops the timer. */
  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#emit()
  }

  #emit(): void {
    if (this.#pending.size === 0) return
    this.#log.warn({ dropped: Object.fromEntries(this.#pending) }, 'outbox dropped messages')
    this.#pending.clear()
    this.#lastAt = performance.now()
  }
}
