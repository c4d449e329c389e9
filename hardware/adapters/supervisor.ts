/**
 * Keeps one adapter running: a failed start or lost hardware (a USB serial adapter unplugged, the
 * process holding a GPIO line killed) is retried with exponential backoff, forever. Hardware
 * failures never stop the coordinator, and never become sticky: users of other edge runtimes lost
 * devices to give-up states that only a reboot or a site visit cleared.
 */
import type { Logger } from '../../coordinator/core/log.js'
import type { Adapter } from './adapter.js'

export type AdapterState = 'starting' | 'running' | 'retrying' | 'stopped'

export interface AdapterStatus {
  thing: string
  kind: Adapter['kind']
  state: AdapterState
  /** Why the last start failed or the hardware was lost; null while running cleanly. */
  lastError: string | null
  /** Starts attempted after the first. */
  retries: number
}

export interface RetryPolicy {
  initialMs: number
  maxMs: number
}

export const RETRY_DEFAULTS: RetryPolicy = Object.freeze({ initialMs: 1000, maxMs: 30_000 })

export class Supervised {
  readonly adapter: Adapter
  readonly #log: Logger
  readonly #retry: RetryPolicy
  #state: AdapterState = 'starting'
  #stopped = false
  #lastError: string | null = null
  #failures = 0
  #retries = 0
  #timer: NodeJS.Timeout | undefined
  #attempt: Promise<void> = Promise.resolve()

  constructor(adapter: Adapter, log: Logger, retry: RetryPolicy = RETRY_DEFAULTS) {
    this.adapter = adapter
    this.#log = log
    this.#retry = retry
  }

  /** The first attempt; resolves either way (a failure schedules a retry). */
  start(): Promise<void> {
    this.#attempt = this.#start()
    return this.#attempt
  }

  status(): AdapterStatus {
    return { thing: this.adapter.thing, kind: this.adapter.kind, state: this.#state, lastError: this.#lastError, retries: this.#retries }
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#state = 'stopped'
    clearTimeout(this.#timer)
    await this.#attempt
    await this.adapter.stop()
  }

  async #start(): Promise<void> {
    if (this.#stopped) return
    this.#state = 'starting'
    try {
      await this.adapter.start((err) => this.#lost(err))
    } catch (err) {
      await this.adapter.stop().catch(() => undefined)
      return this.#scheduleRetry(err as Error, 'hardware adapter failed to start')
    }
    if (this.#stopped) return
    this.#state = 'running'
    this.#failures = 0
    this.#lastError = null
  }

  #lost(err: Error): void {
    if (this.#state !== 'running') return
    this.#state = 'retrying'
    this.#attempt = this.adapter.stop().catch(() => undefined).then(() => this.#scheduleRetry(err, 'hardware lost'))
  }

  #scheduleRetry(err: Error, msg: string): void {
    if (this.#stopped) return
    const delayMs = Math.min(this.#retry.maxMs, this.#retry.initialMs * 2 ** this.#failures)
    this.#failures++
    this.#state = 'retrying'
    // The same error every 30 s for a sensor left unplugged would be 2880 warnings a day on the card.
    const repeated = err.message === this.#lastError
    this.#lastError = err.message
    const fields = { thingName: this.adapter.thing, kind: this.adapter.kind, err: err.message, retryInMs: delayMs }
    if (repeated) this.#log.debug(fields, msg)
    else this.#log.warn(fields, msg)
    this.#timer = setTimeout(() => {
      this.#retries++
      this.#attempt = this.#start()
    }, delayMs)
  }
}
