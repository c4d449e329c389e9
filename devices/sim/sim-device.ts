/**
 * The common life of a simulated device, as the AWS device guidance describes it (reference §1.1):
 * on start, listen for deltas, read the shadow and obey its desired state, report the full
 * reported state; then tick every `intervalMs` (physics, telemetry, reports). A subclass provides
 * the physics (`tick`), how desired state is obeyed (`applyDesired`) and what is reported.
 *
 * Time inside the models advances by `intervalMs` per tick, not by the wall clock, so a seeded
 * device behaves identically under a busy event loop and under fake timers.
 */
import { isShadowNotFound, type JsonObject } from '../sdk/index.js'
import type { DeviceLink, ShadowLink } from './link.js'
import { seededRandom, type Random } from './random.js'

export interface SimOptions {
  /** Seed of the device's random source; default 1. */
  seed?: number
  /** Tick period in ms; telemetry is published every tick. Default 1000. */
  intervalMs?: number
  /** Called with every failed shadow update or telemetry publish; they are also counted. */
  onError?: (err: unknown) => void
}

export interface SimStats {
  /** Shadow updates (reports) the coordinator accepted. */
  updates: number
  /** Telemetry messages the broker took. */
  telemetry: number
  errors: number
}

export abstract class SimDevice {
  readonly thingName: string
  protected readonly random: Random
  protected readonly intervalMs: number
  readonly #link: DeviceLink
  readonly #shadow: ShadowLink
  readonly #onError: (err: unknown) => void
  readonly #stats: SimStats = { updates: 0, telemetry: 0, errors: 0 }
  readonly #timeouts = new Set<NodeJS.Timeout>()
  readonly #inFlight = new Set<Promise<void>>()
  #interval: NodeJS.Timeout | undefined
  #unsubscribe: (() => void) | undefined
  #running = false

  constructor(link: DeviceLink, options: SimOptions = {}) {
    this.intervalMs = options.intervalMs ?? 1000
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${this.intervalMs}`)
    this.thingName = link.thingName
    this.random = seededRandom(options.seed ?? 1)
    this.#link = link
    this.#shadow = link.shadow()
    this.#onError = options.onError ?? (() => {})
  }

  get running(): boolean {
    return this.#running
  }

  stats(): SimStats {
    return { ...this.#stats }
  }

  /** Resolves once the device has obeyed the stored desired state and reported its own. */
  async start(): Promise<void> {
    if (this.#running) throw new Error(`${this.thingName} is already running`)
    this.#running = true
    this.#unsubscribe = this.#shadow.onDelta((delta) => this.#obey(delta.state))
    try {
      const desired = await this.#storedDesired()
      if (desired !== undefined) this.applyDesired(desired)
      await this.report(this.reportedState())
    } catch (err) {
      await this.stop()
      throw err
    }
    this.#interval = setInterval(() => this.tick(this.intervalMs), this.intervalMs)
  }

  /** Stops ticking and pending actuations, and waits for reports already on their way. */
  async stop(): Promise<void> {
    this.#running = false
    clearInterval(this.#interval)
    for (const t of this.#timeouts) clearTimeout(t)
    this.#timeouts.clear()
    this.#unsubscribe?.()
    await Promise.allSettled([...this.#inFlight])
  }

  /**
   * Obeys desired state: the whole desired section at start, then each delta. Report only when the
   * device's state changed: the coordinator sends a delta after every update that leaves one, so
   * answering a delta the device cannot satisfy (an unknown key, an out-of-range value) with a
   * report would start an endless delta-report loop.
   */
  protected abstract applyDesired(desired: JsonObject): void
  /** Advances the simulation by `dtMs`; publishes and reports as the device would. */
  protected abstract tick(dtMs: number): void
  /** The full reported state, sent at start. */
  protected abstract reportedState(): JsonObject

  /** Sends a reported-state update; failures are counted, never thrown. */
  protected report(reported: JsonObject): Promise<void> {
    return this.#track(this.#shadow.update({ state: { reported } }).then(() => void this.#stats.updates++))
  }

  protected publish(data: JsonObject, encoding: 'json' | 'cbor' = 'json'): void {
    void this.#track(this.#link.publishTelemetry(data, { encoding }).then((outcome) => {
      if (outcome === 'sent') this.#stats.telemetry++
    }))
  }

  /** Runs `fn` after `ms` unless the device stops first (actuation delays). */
  protected after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timeouts.delete(t)
      fn()
    }, ms)
    this.#timeouts.add(t)
  }

  #obey(desired: JsonObject): void {
    if (this.#running) this.applyDesired(desired)
  }

  async #storedDesired(): Promise<JsonObject | undefined> {
    try {
      return (await this.#shadow.get()).state.desired
    } catch (err) {
      if (isShadowNotFound(err)) return undefined
      throw err
    }
  }

  #track(work: Promise<void>): Promise<void> {
    const tracked = work.catch((err: unknown) => {
      this.#stats.errors++
      this.#onError(err)
    }).finally(() => this.#inFlight.delete(tracked))
    this.#inFlight.add(tracked)
    return tracked
  }
}
