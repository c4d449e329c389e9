import type { Clock } from '../core/clock.js'

/**
 * When a failing task is paused, rebuilt or given up on. Failures count as a streak that any
 * success ends; a streak whose first failure is older than `windowMs` starts over, so rare errors
 * never add up to `broken` (Greengrass: BROKEN after repeated errors within a period).
 */
export interface RestartPolicy {
  /** First pause before rebuilding the sandbox; each further pause in the streak doubles it. */
  initialBackoffMs: number
  /** Ceiling of the pause. */
  maxBackoffMs: number
  /** Failures in one streak that mark the task broken. */
  brokenAfter: number
  /** How long one streak may last. */
  windowMs: number
}

export const RESTART_DEFAULTS: Readonly<RestartPolicy> = Object.freeze({
  initialBackoffMs: 100,
  maxBackoffMs: 30_000,
  brokenAfter: 5,
  windowMs: 10 * 60_000,
})

export type Verdict =
  /** One failure of a healthy sandbox: keep serving at once. */
  | { action: 'continue'; streak: number }
  /** Lost sandbox or a repeat failure: pause, then serve from a fresh sandbox. */
  | { action: 'rebuild'; streak: number; delayMs: number }
  | { action: 'broken'; streak: number }

export class FailureStreak {
  readonly #policy: RestartPolicy
  readonly #clock: Clock
  #streak = 0
  #pauses = 0
  #startedAt = 0

  constructor(policy: RestartPolicy, clock: Clock) {
    this.#policy = policy
    this.#clock = clock
  }

  get streak(): number {
    return this.#streak
  }

  success(): void {
    this.#reset()
  }

  /** `sandboxLost`: the sandbox disposed itself (memory limit, killed isolate). */
  failure(sandboxLost: boolean): Verdict {
    const now = this.#clock.now()
    if (this.#streak === 0 || now - this.#startedAt > this.#policy.windowMs) {
      this.#reset()
      this.#startedAt = now
    }
    const streak = ++this.#streak
    if (streak >= this.#policy.brokenAfter) return { action: 'broken', streak }
    if (!sandboxLost && streak === 1) return { action: 'continue', streak }
    return { action: 'rebuild', streak, delayMs: backoffDelay(this.#policy, this.#pauses++) }
  }

  #reset(): void {
    this.#streak = 0
    this.#pauses = 0
  }
}

/** The pause before rebuild number `n` (from 0) of a streak. */
export function backoffDelay(policy: RestartPolicy, n: number): number {
  return Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** n)
}
