import type { Clock } from '../core/clock.js'
import { ClosedError } from '../core/errors.js'
import { taskLimit, type TaskLimitName } from './errors.js'
import type { HostLimits } from './limits.js'

/** `rate` tokens a second, holding at most `burst`. */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  readonly #clock: Clock
  #tokens: number
  #at: number

  constructor(rate: number, burst: number, clock: Clock) {
    this.#rate = rate
    this.#burst = burst
    this.#clock = clock
    this.#tokens = burst
    this.#at = clock.now()
  }

  take(n = 1): boolean {
    this.#refill()
    if (this.#tokens < n) return false
    this.#tokens -= n
    return true
  }

  /** How long until one token is there. */
  msUntilToken(): number {
    this.#refill()
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) * 1000) / this.#rate)
  }

  #refill(): void {
    const now = this.#clock.now()
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate)
    this.#at = now
  }
}

interface Waiter {
  resolve(): void
  reject(error: Error): void
}

/**
 * A task's publishes on their way to the broker. Each is counted, with its bytes, from the moment
 * the host receives it until the broker has delivered it. Within the rate it goes at once; beyond
 * it waits its turn, so a task that awaits its publishes is slowed to the rate (back-pressure into
 * the isolate). A publish that would take the task past its in-flight count or bytes is refused:
 * the host never holds more than that for one task, however fast it publishes.
 */
export class PublishGate {
  readonly #task: string
  readonly #limits: HostLimits
  readonly #bucket: TokenBucket
  readonly #waiting: Waiter[] = []
  #count = 0
  #bytes = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(task: string, limits: HostLimits, clock: Clock) {
    this.#task = task
    this.#limits = limits
    this.#bucket = new TokenBucket(limits.publishesPerSecond, limits.publishBurst, clock)
  }

  /** Throws COORD_TASK_LIMIT at once when the publish does not fit; else resolves when it may go. */
  async admit(bytes: number): Promise<() => void> {
    if (this.#closed) throw new ClosedError(`task ${JSON.stringify(this.#task)} is no longer running`)
    const { publishesInFlight, publishBytesInFlight } = this.#limits
    if (this.#count >= publishesInFlight) {
      throw taskLimit(this.#task, 'publishesInFlight', `${this.#count} publishes are in flight, the most it may have`)
    }
    if (this.#bytes + bytes > publishBytesInFlight) {
      throw taskLimit(this.#task, 'publishBytesInFlight', `${this.#bytes} bytes are in flight and this publish has ${bytes}; at most ${publishBytesInFlight} may be`)
    }
    this.#count++
    this.#bytes += bytes
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.#count--
      this.#bytes -= bytes
    }
    if (this.#waiting.length === 0 && this.#bucket.take()) return release
    try {
      await new Promise<void>((resolve, reject) => {
        this.#waiting.push({ resolve, reject })
        this.#schedule()
      })
    } catch (err) {
      release()
      throw err
    }
    return release
  }

  /** Waiting publishes are refused; those already on the broker finish. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    const error = new ClosedError(`task ${JSON.stringify(this.#task)} is no longer running`)
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error)
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      while (this.#waiting.length > 0 && this.#bucket.take()) this.#waiting.shift()?.resolve()
      if (this.#waiting.length > 0) this.#schedule()
    }, this.#bucket.msUntilToken())
  }
}

/** Calls of one kind awaiting their answer; one beyond `max` is refused with COORD_TASK_LIMIT. */
export class InFlight {
  readonly #task: string
  readonly #limit: TaskLimitName
  readonly #max: number
  #count = 0

  constructor(task: string, limit: TaskLimitName, max: number) {
    this.#task = task
    this.#limit = limit
    this.#max = max
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#count >= this.#max) throw taskLimit(this.#task, this.#limit, `${this.#count} calls are awaiting their answer, the most it may have`)
    this.#count++
    try {
      return await fn()
    } finally {
      this.#count--
    }
  }
}

/** Everything one task holds at the host boundary, shared by its versions while they overlap. */
export class TaskBudget {
  readonly limits: HostLimits
  readonly publishes: PublishGate
  readonly shadowCalls: InFlight
  readonly invokeCalls: InFlight

  constructor(task: string, limits: HostLimits, clock: Clock) {
    this.limits = limits
    this.publishes = new PublishGate(task, limits, clock)
    this.shadowCalls = new InFlight(task, 'shadowCallsInFlight', limits.shadowCallsInFlight)
    this.invokeCalls = new InFlight(task, 'invokeCallsInFlight', limits.invokeCallsInFlight)
  }

  close(): void {
    this.publishes.close()
  }
}
