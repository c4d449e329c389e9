import type { Clock } from '../core/clock.js'
import { K, type Logger } from '../core/log.js'

/** Why a shadow request was refused by a bound (not by the protocol's own validation). */
export type RefusalReason = 'requestBytes' | 'size' | 'namedShadows' | 'rate'

const MESSAGES: Readonly<Record<RefusalReason, string>> = {
  requestBytes: 'shadow requests refused: payload over shadow.maxRequestBytes',
  size: 'shadow updates refused: state or metadata over its size limit',
  namedShadows: 'shadow updates refused: thing at shadow.maxNamedShadowsPerThing',
  rate: 'shadow requests refused: over shadow.maxRequestsPerSecondPerThing',
}

/** One warning per reason per interval, however many requests a flood brings. */
const LOG_INTERVAL_MS = 10_000

/**
 * Counts refused requests by reason and logs them at most once per reason per interval, with how
 * many were refused since the last line and the last thing refused (never the payload).
 */
export class Refusals {
  readonly #counts: Record<RefusalReason, number> = { requestBytes: 0, size: 0, namedShadows: 0, rate: 0 }
  readonly #unlogged: Record<RefusalReason, number> = { requestBytes: 0, size: 0, namedShadows: 0, rate: 0 }
  readonly #loggedAt = new Map<RefusalReason, number>()
  readonly #clock: Clock
  readonly #log: Logger

  constructor(clock: Clock, log: Logger) {
    this.#clock = clock
    this.#log = log
  }

  /** `thingName` is unknown for a body refused before its route was read (HTTP). */
  count(reason: RefusalReason, thingName?: string): void {
    this.#counts[reason]++
    this.#unlogged[reason]++
    const now = this.#clock.now()
    const last = this.#loggedAt.get(reason)
    if (last !== undefined && now - last < LOG_INTERVAL_MS) return
    this.#loggedAt.set(reason, now)
    const thing = thingName === undefined ? {} : { [K.thingName]: thingName }
    this.#log.warn({ ...thing, count: this.#unlogged[reason], total: this.#counts[reason] }, MESSAGES[reason])
    this.#unlogged[reason] = 0
  }

  /** Requests refused so far, by reason. */
  snapshot(): Record<RefusalReason, number> {
    return { ...this.#counts }
  }
}
