/**
 * A serial sensor as a device: every line it prints is parsed (kv, json or raw lines) and becomes
 * its shadow's reported state. Each report is a committed SQLite transaction, an SD-card write, and
 * the shadow service allows 20 requests per second per thing, so readings arriving faster than
 * `minIntervalMs` are coalesced: the newest one is reported when the interval has passed.
 *
 * Serial sensors talk and are not told: desired state is not written to the port.
 */
import type { JsonObject } from '../../coordinator/protocol/index.js'
import type { Logger } from '../../coordinator/core/log.js'
import type { SerialBackend, SerialConnection, SerialFormat } from '../serial/backend.js'
import { PARSERS } from '../serial/parsers.js'
import type { Adapter } from './adapter.js'
import { reportState, type ShadowAccess } from './shadow-port.js'

export interface SerialAdapterOptions {
  thing: string
  path: string
  baud: number
  format: SerialFormat
  minIntervalMs: number
  backend: SerialBackend
  shadows: ShadowAccess
  log: Logger
}

export class SerialAdapter implements Adapter {
  readonly kind = 'serial'
  readonly thing: string
  readonly #o: SerialAdapterOptions
  readonly #parse: (line: string) => JsonObject | null
  #connection: SerialConnection | undefined
  #pending: JsonObject | undefined
  #timer: NodeJS.Timeout | undefined
  #lastReportAt = Number.NEGATIVE_INFINITY
  #inFlight: Promise<void> = Promise.resolve()
  /** Lines that did not parse (noise, a partial line at open). */
  unparsed = 0

  constructor(opts: SerialAdapterOptions) {
    this.#o = opts
    this.thing = opts.thing
    this.#parse = PARSERS[opts.format]
  }

  async start(lost: (err: Error) => void): Promise<void> {
    const { path, baud, format, backend } = this.#o
    const connection = await backend.open({ path, baud, format })
    connection.onLine((line) => this.#onLine(line))
    connection.onLost(lost)
    this.#connection = connection
    this.#o.log.info({ thingName: this.thing, path, baud, format, backend: backend.name }, 'serial port opened')
  }

  /** Closes the port, then reports a reading still waiting for its interval. */
  async stop(): Promise<void> {
    const connection = this.#connection
    this.#connection = undefined
    await connection?.close()
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#flush()
    await this.#inFlight
  }

  #onLine(line: string): void {
    const reading = this.#parse(line)
    if (reading === null) {
      this.unparsed++
      this.#o.log.debug({ thingName: this.thing }, 'serial line did not parse')
      return
    }
    this.#pending = reading
    this.#schedule()
  }

  #schedule(): void {
    if (this.#timer !== undefined) return
    const wait = Math.max(0, this.#lastReportAt + this.#o.minIntervalMs - Date.now())
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#flush()
    }, wait)
  }

  /** One report in flight at a time: a slow store (an fsync on a busy SD card) never piles them up. */
  #flush(): void {
    const reading = this.#pending
    if (reading === undefined) return
    this.#pending = undefined
    this.#lastReportAt = Date.now()
    this.#inFlight = this.#inFlight
      .then(() => reportState(this.#o.shadows, this.thing, reading, this.#o.log))
      .then(() => undefined, (err: Error) => this.#o.log.warn({ thingName: this.thing, err: err.message }, 'could not report the reading'))
  }
}
