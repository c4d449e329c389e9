/** Reconnect delays: exponential growth with "full jitter" (AWS Architecture Blog, 2015). */
export interface BackoffOptions {
  /** Ceiling of the first delay, in ms. */
  initialMs: number
  /** Largest ceiling, in ms; the exponential growth stops here. */
  maxMs: number
  /** Growth of the ceiling per failed attempt. */
  factor?: number
  /** Uniform in [0, 1); injectable so tests can pin the jitter. */
  random?: () => number
}

/**
 * The ceiling for the `attempt`-th delay (0-based): min(maxMs, initialMs * factor^attempt).
 * Computed without overflow for any attempt count: once the ceiling reaches maxMs it stays there.
 */
export function backoffCeiling(attempt: number, opts: Pick<BackoffOptions, 'initialMs' | 'maxMs' | 'factor'>): number {
  const factor = opts.factor ?? 2
  const growth = factor ** Math.max(0, attempt)
  return Number.isFinite(growth) ? Math.min(opts.maxMs, opts.initialMs * growth) : opts.maxMs
}

/**
 * Full jitter: a uniform delay in [0, ceiling). Spreading reconnects over the whole interval keeps a
 * fleet that lost the cloud at the same moment from reconnecting in lockstep (retry storms).
 */
export function fullJitterDelay(attempt: number, opts: BackoffOptions): number {
  const random = opts.random ?? Math.random
  return Math.floor(random() * backoffCeiling(attempt, opts))
}

/** Stateful sequence of delays; `reset()` once a connection has proven stable. */
export class Backoff {
  readonly #opts: BackoffOptions
  #attempt = 0

  constructor(opts: BackoffOptions) {
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs) || !((opts.factor ?? 2) >= 1)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs and factor >= 1')
    }
    this.#opts = opts
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    return fullJitterDelay(this.#attempt++, this.#opts)
  }

  reset(): void {
    this.#attempt = 0
  }
}
