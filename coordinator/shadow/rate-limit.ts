import type { Clock } from '../core/clock.js'

/** Token bucket per key: `ratePerSecond` requests a second, bursts up to the same number. */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #rate: number
  readonly #clock: Clock

  /** A rate of 0 lets everything through. */
  constructor(ratePerSecond: number, clock: Clock) {
    this.#rate = ratePerSecond
    this.#clock = clock
  }

  tryTake(key: string): boolean {
    if (this.#rate === 0) return true
    const now = this.#clock.now()
    const bucket = this.#buckets.get(key) ?? { tokens: this.#rate, at: now }
    bucket.tokens = Math.min(this.#rate, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate)
    bucket.at = now
    if (this.#buckets.size > 10_000) this.#forgetFull(now)
    this.#buckets.set(key, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  /** Keys idle for a second are full again; dropping them keeps memory bounded by active things. */
  #forgetFull(now: number): void {
    for (const [key, b] of this.#buckets) if (now - b.at >= 1000) this.#buckets.delete(key)
  }
}
