/** Node turns larger delays into 1 ms (with a warning); asking for "never" gets the maximum instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1
/** An interval of 0 would re-enter the isolate as fast as the host can; 10 ms keeps the gateway responsive. */
export const MIN_INTERVAL_MS = 10

interface HostTimer {
  handle: NodeJS.Timeout
  repeat: boolean
  /** A firing is queued or running; further ticks are dropped instead of piling up. */
  busy: boolean
  /** The call that armed it, while that call is pending; its failure clears the timer. */
  owner: number | undefined
}

/**
 * The host side of a task's setTimeout/setInterval. Ids come from the isolate, which keeps the
 * callbacks; the host keeps only the schedule and enforces the cap again, since the isolate's own
 * count lives next to task code.
 */
export class HostTimers {
  readonly #live = new Map<number, HostTimer>()
  readonly #max: number
  readonly #fire: (id: number) => void
  /** While the task's timer budget is spent: intervals skip their ticks, timeouts wait. */
  #heldUntil = 0

  /** `fire` must call `fired(id)` once the firing has left the isolate. */
  constructor(max: number, fire: (id: number) => void) {
    this.#max = max
    this.#fire = fire
  }

  get size(): number {
    return this.#live.size
  }

  /** False when refused: bad id, id in use, or the cap reached. `owner`: the pending call arming it. */
  set(id: unknown, delay: unknown, repeat: boolean, owner?: number): boolean {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || this.#live.has(id) || this.#live.size >= this.#max) return false
    const ms = clampDelay(delay, repeat)
    this.#live.set(id, { handle: this.#arm(id, ms, repeat), repeat, busy: false, owner })
    return true
  }

  ownerOf(id: number): number | undefined {
    return this.#live.get(id)?.owner
  }

  /** The call settled well: its timers are the task's own from now on. */
  release(owner: number): void {
    for (const timer of this.#live.values()) if (timer.owner === owner) timer.owner = undefined
  }

  /** Clears the timers a (failed) call armed; returns their ids so the isolate can forget them too. */
  clearOwnedBy(owner: number): number[] {
    const ids = [...this.#live].filter(([, timer]) => timer.owner === owner).map(([id]) => id)
    for (const id of ids) this.clear(id)
    return ids
  }

  /** No timer fires before `untilMs` (Date.now() time); a timeout due meanwhile fires then. */
  holdUntil(untilMs: number): void {
    this.#heldUntil = Math.max(this.#heldUntil, untilMs)
  }

  /** True when the timer was live. */
  clear(id: unknown): boolean {
    const timer = typeof id === 'number' ? this.#live.get(id) : undefined
    if (timer === undefined) return false
    clearTimeout(timer.handle)
    return this.#live.delete(id as number)
  }

  clearAll(): void {
    for (const timer of this.#live.values()) clearTimeout(timer.handle)
    this.#live.clear()
  }

  fired(id: number): void {
    const timer = this.#live.get(id)
    if (timer !== undefined) timer.busy = false
  }

  #arm(id: number, ms: number, repeat: boolean): NodeJS.Timeout {
    const tick = (): void => this.#tick(id)
    const handle = repeat ? setInterval(tick, ms) : setTimeout(tick, ms)
    // A task's timer alone must not keep the process alive; the daemon's servers do that.
    return handle.unref()
  }

  #tick(id: number): void {
    const timer = this.#live.get(id)
    if (timer === undefined || timer.busy) return
    const held = this.#heldUntil - Date.now()
    if (held > 0) {
      if (!timer.repeat) timer.handle = this.#arm(id, held, false)
      return
    }
    if (timer.repeat) timer.busy = true
    else this.#live.delete(id)
    this.#fire(id)
  }
}

function clampDelay(delay: unknown, repeat: boolean): number {
  const ms = typeof delay === 'number' && Number.isFinite(delay) ? Math.min(Math.max(delay, 0), MAX_TIMER_MS) : 0
  return repeat ? Math.max(ms, MIN_INTERVAL_MS) : ms
}

/** The window a task's timer budget is counted over. */
const TIMER_WINDOW_MS = 1000

/**
 * A task's timer callbacks share one CPU budget per second. `charge` adds what a firing used;
 * the first charge that passes the budget in a window returns the window's total (once), and the
 * caller then holds the task's timers until the window ends.
 */
export class TimerBudget {
  readonly #budgetMs: number
  #windowStart = -Infinity
  #usedMs = 0
  #reported = false

  constructor(budgetMs: number) {
    this.#budgetMs = budgetMs
  }

  get budgetMs(): number {
    return this.#budgetMs
  }

  /** When the current window ends (Date.now() time). */
  get windowEnd(): number {
    return this.#windowStart + TIMER_WINDOW_MS
  }

  /** The window's CPU total when this charge first passes the budget; undefined otherwise. */
  charge(ms: number): number | undefined {
    const now = Date.now()
    if (now >= this.windowEnd) {
      this.#windowStart = now
      this.#usedMs = 0
      this.#reported = false
    }
    this.#usedMs += ms
    if (this.#reported || this.#usedMs <= this.#budgetMs) return undefined
    this.#reported = true
    return this.#usedMs
  }
}
