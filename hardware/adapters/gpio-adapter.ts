/**
 * A GPIO line as a device. Its shadow's `on` is the line's logical level (active-low applied):
 * - output (a relay): obeys `desired.on` from deltas and reports `on` once the line is driven; at
 *   start it drives the stored `desired.on`, or `initial` when there is none.
 * - input (a contact, a button): reports `on` at start and at every edge; desired state is ignored.
 *
 * Following the AWS device guidance (as devices/sim does), a delta the line cannot satisfy (an
 * unknown key, a non-boolean `on`) is left alone: answering it with a report of unchanged state
 * would not clear it, and every report would bring it back.
 */
import type { JsonObject } from '../../coordinator/protocol/index.js'
import type { Logger } from '../../coordinator/core/log.js'
import type { GpioBackend, GpioLine } from '../gpio/backend.js'
import type { Adapter } from './adapter.js'
import { onDelta, reportState, storedDesired, type ShadowAccess } from './shadow-port.js'

export interface GpioAdapterOptions {
  thing: string
  chip: string
  line: number
  direction: 'in' | 'out'
  activeLow: boolean
  /** Output level at start when the shadow holds no desired `on`. */
  initial: boolean
  backend: GpioBackend
  shadows: ShadowAccess
  log: Logger
}

export class GpioAdapter implements Adapter {
  readonly kind = 'gpio'
  readonly thing: string
  readonly #o: GpioAdapterOptions
  #line: GpioLine | undefined
  #on = false
  #unsubscribe: (() => void) | undefined
  /** Opening, obeying and reporting run one at a time, in arrival order. */
  #work: Promise<void> = Promise.resolve()
  #reportQueued = false

  constructor(opts: GpioAdapterOptions) {
    this.#o = opts
    this.thing = opts.thing
  }

  /** The line's logical level as last driven or read. */
  get on(): boolean {
    return this.#on
  }

  async start(lost: (err: Error) => void): Promise<void> {
    // Subscribed before the shadow is read: a delta arriving meanwhile queues behind the open.
    this.#unsubscribe = onDelta(this.#o.shadows, this.thing, (delta) => {
      this.#enqueue(() => this.#obey(delta)).catch((err: Error) => this.#o.log.warn({ thingName: this.thing, err: err.message }, 'could not apply the desired state'))
    })
    await this.#enqueue(() => this.#open(lost))
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    await this.#work
    const line = this.#line
    this.#line = undefined
    await line?.close()
  }

  async #open(lost: (err: Error) => void): Promise<void> {
    const { direction, chip, line: offset, backend } = this.#o
    const desired = direction === 'out' ? (await storedDesired(this.#o.shadows, this.thing))?.['on'] : undefined
    const on = typeof desired === 'boolean' ? desired : this.#o.initial
    const line = await backend.open({ chip, line: offset, direction, initial: this.#physical(on) })
    this.#line = line
    this.#on = direction === 'out' ? on : this.#logical(await line.read())
    line.onEdge((level) => this.#onEdge(level))
    line.onLost(lost)
    this.#o.log.info({ thingName: this.thing, chip, line: offset, direction, backend: backend.name, on: this.#on }, 'gpio line opened')
    await this.#report()
  }

  async #obey(delta: JsonObject): Promise<void> {
    const on = delta['on']
    if (this.#o.direction !== 'out' || typeof on !== 'boolean' || this.#line === undefined) return
    if (on !== this.#on) await this.#line.write(this.#physical(on))
    this.#on = on
    await this.#report()
  }

  /** Edges can come in bursts (a bouncing contact): one report is queued at a time, with the latest level. */
  #onEdge(level: boolean): void {
    const on = this.#logical(level)
    if (on === this.#on) return
    this.#on = on
    if (this.#reportQueued) return
    this.#reportQueued = true
    this.#enqueue(async () => {
      this.#reportQueued = false
      await this.#report()
    }).catch((err: Error) => this.#o.log.warn({ thingName: this.thing, err: err.message }, 'could not report the line level'))
  }

  async #report(): Promise<void> {
    await reportState(this.#o.shadows, this.thing, { on: this.#on }, this.#o.log)
  }

  #physical(on: boolean): boolean {
    return on !== this.#o.activeLow
  }

  #logical(level: boolean): boolean {
    return level !== this.#o.activeLow
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#work.then(job)
    // The queue carries on after a failed job; whoever enqueued it handles the failure.
    this.#work = run.catch(() => {})
    return run
  }
}
