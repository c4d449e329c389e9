/** Node turns larger delays into 1 ms (with a warning); asking for "never" gets the maximum instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1
/** An interval of 0 would re-enter the isolate as fast as the host can; 10 ms keeps the gateway responsive. */
export const MIN_INTERVAL_MS = 10

interface HostTimer {
  handle: NodeJS.Timeout
  repeat: boolean
  /** A firing is queued or running; further ticks are dropped instead of piling up. */
  busy: boolean
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

  /** `fire` must call `fired(id)` once the firing has left the isolate. */
  constructor(max: number, fire: (id: number) => void) {
    this.#max = max
    this.#fire = fire
  }

  get size(): number {
    return this.#live.size
  }

  /** False when refused: bad id, id in use, or the cap reached. */
  set(id: unknown, delay: unknown, repeat: boolean): boolean {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || this.#live.has(id) || this.#live.size >= this.#max) return false
    const ms = clampDelay(delay, repeat)
    const tick = (): void => this.#tick(id)
    const handle = repeat ? setInterval(tick, ms) : setTimeout(tick, ms)
    // A task's timer alone must not keep the process alive; the daemon's servers do that.
    handle.unref()
    this.#live.set(id, { handle, repeat, busy: false })
    return true
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

  #tick(id: number): void {
    const timer = this.#live.get(id)
    if (timer === undefined || timer.busy) return
    if (timer.repeat) timer.busy = true
    else this.#live.delete(id)
    this.#fire(id)
  }
}

function clampDelay(delay: unknown, repeat: boolean): number {
  const ms = typeof delay === 'number' && Number.isFinite(delay) ? Math.min(Math.max(delay, 0), MAX_TIMER_MS) : 0
  return repeat ? Math.max(ms, MIN_INTERVAL_MS) : ms
}
