/**
 * Back-off for failed token checks, per client id and per source address. Each check costs an
 * scrypt derivation (16 MiB, tens of milliseconds on a Pi), so a flood of wrong tokens must be
 * turned away before it is derived: after `freeFailures` failures (counting checks still running),
 * a key waits `baseMs`, then twice that after each further failure, up to `maxMs`.
 */

export interface TokenBackoff {
  /** Failed checks a key may have before it must wait. */
  freeFailures: number
  /** The first wait; it doubles with each failure after that. */
  baseMs: number
  /** The longest wait; a key idle that long after its wait ended is forgotten. */
  maxMs: number
  /**
   * Checks derived at once across all clients. Each keeps a core busy; the event loop (and every
   * other device) needs the rest. Checks beyond it wait, at most 32 per slot, and the ones past that are refused.
   */
  maxConcurrentChecks: number
}

/** Checks that may wait for a slot, per slot. */
const QUEUED_PER_SLOT = 32

/** Keys tracked at most (the oldest are forgotten first), so random client ids cannot grow the map without end. */
const MAX_TRACKED = 4096

interface KeyState {
  failures: number
  /** Checks admitted and not settled yet. */
  pending: number
  /** No check before this time (ms). */
  until: number
}

/** What settle() reports for a failure that started (or lengthened) a key's wait. */
export interface BackoffStarted {
  key: string
  failures: number
  waitMs: number
}

export class TokenThrottle {
  readonly #opts: TokenBackoff
  readonly #now: () => number
  readonly #keys = new Map<string, KeyState>()
  #running = 0
  readonly #waiting: Array<() => void> = []
  /** Checks refused without being derived, and checks that failed. */
  throttled = 0
  failed = 0

  constructor(opts: TokenBackoff, now: () => number = Date.now) {
    this.#opts = opts
    this.#now = now
  }

  /**
   * Admits a check for all `keys` (it is then pending on each until settle()), or returns how many
   * ms the most restricted key still has to wait (at least 1 while checks for it are running).
   */
  admit(keys: readonly string[]): number | null {
    const now = this.#now()
    let wait = 0
    for (const key of keys) wait = Math.max(wait, this.#waitOf(key, now))
    if (wait > 0) {
      this.throttled++
      return wait
    }
    for (const key of keys) this.#state(key).pending++
    return null
  }

  /**
   * Ends an admitted check. A success forgets the keys listed in `forgetOnSuccess` (the client id:
   * the device proved itself; its address may still be shared with an attacker). Returns the keys
   * whose wait this failure started or lengthened, for the caller to log.
   */
  settle(keys: readonly string[], ok: boolean, forgetOnSuccess: readonly string[] = []): BackoffStarted[] {
    const now = this.#now()
    const started: BackoffStarted[] = []
    if (!ok) this.failed++
    for (const key of keys) {
      const state = this.#keys.get(key)
      if (state === undefined) continue
      state.pending = Math.max(0, state.pending - 1)
      if (ok) {
        if (forgetOnSuccess.includes(key)) this.#keys.delete(key)
        continue
      }
      state.failures++
      const over = state.failures - this.#opts.freeFailures
      if (over < 0) continue
      const waitMs = Math.min(this.#opts.maxMs, this.#opts.baseMs * 2 ** Math.min(over, 30))
      state.until = now + waitMs
      started.push({ key, failures: state.failures, waitMs })
    }
    return started
  }

  /**
   * Runs `check` when a derivation slot is free. False (and `check` is not run) when the queue is
   * full: the caller refuses the attempt as throttled.
   */
  async inSlot<T>(check: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    if (this.#running >= this.#opts.maxConcurrentChecks) {
      if (this.#waiting.length >= QUEUED_PER_SLOT * this.#opts.maxConcurrentChecks) {
        this.throttled++
        return { ran: false }
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    } else {
      this.#running++
    }
    try {
      return { ran: true, value: await check() }
    } finally {
      // The slot passes straight to the next waiter, so #running stays counted for it.
      const next = this.#waiting.shift()
      if (next === undefined) this.#running--
      else next()
    }
  }

  /** Ends an admitted check that never ran (no slot): neither a failure nor a success. */
  release(keys: readonly string[]): void {
    for (const key of keys) {
      const state = this.#keys.get(key)
      if (state !== undefined) state.pending = Math.max(0, state.pending - 1)
    }
  }

  #waitOf(key: string, now: number): number {
    const state = this.#keys.get(key)
    if (state === undefined) return 0
    if (state.pending === 0 && state.until > 0 && now >= state.until + this.#opts.maxMs) {
      this.#keys.delete(key)
      return 0
    }
    if (now < state.until) return state.until - now
    // Past its free failures, a key gets one check at a time: the running one decides the next wait.
    if (state.failures + state.pending >= this.#opts.freeFailures && state.pending > 0) return 1
    return 0
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key)
    if (state === undefined) {
      if (this.#keys.size >= MAX_TRACKED) this.#keys.delete(this.#keys.keys().next().value as string)
      state = { failures: 0, pending: 0, until: 0 }
      this.#keys.set(key, state)
    }
    return state
  }
}
