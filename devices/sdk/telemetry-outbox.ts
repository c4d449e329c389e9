/**
 * Outgoing telemetry: sent at once while online, held in the bounded OfflineBuffer while offline
 * and flushed in order on reconnect. The buffer is ours rather than MQTT.js's offline queue because
 * that queue has no cap, and a device that is offline for a day would otherwise run out of memory.
 *
 * Every publish settles exactly once: 'sent' when the broker has it (written at QoS 0, PUBACK at
 * QoS 1), 'dropped' when the buffer evicted it or the client closed before it was sent.
 */
import { DeviceClosedError } from './errors.js'
import { OfflineBuffer, type OfflineBufferLimits } from './offline-buffer.js'
import type { QoS } from './types.js'

export type PublishOutcome = 'sent' | 'dropped'

export interface OutgoingMessage {
  topic: string
  payload: Buffer
  qos: QoS
}

interface Entry extends OutgoingMessage {
  resolve(outcome: PublishOutcome): void
  reject(err: Error): void
}

export interface TelemetryStats {
  sent: number
  /** Messages waiting in the offline buffer now. */
  buffered: number
  bufferedBytes: number
  /** Messages evicted from the full buffer or still unsent at close. */
  dropped: number
}

/** Hands a message to the transport; `done` is called once the broker has it, or with an error. */
export type Transmit = (msg: OutgoingMessage, done: (err?: Error) => void) => void

export class TelemetryOutbox {
  readonly #buffer: OfflineBuffer<Entry>
  readonly #transmit: Transmit
  readonly #isOnline: () => boolean
  readonly #inFlight = new Set<Entry>()
  #sent = 0
  #dropped = 0
  #closed = false

  constructor(limits: OfflineBufferLimits, transmit: Transmit, isOnline: () => boolean) {
    this.#buffer = new OfflineBuffer<Entry>(limits, (e) => e.payload.length)
    this.#transmit = transmit
    this.#isOnline = isOnline
  }

  publish(msg: OutgoingMessage): Promise<PublishOutcome> {
    if (this.#closed) return Promise.reject(new DeviceClosedError())
    return new Promise((resolve, reject) => {
      const entry: Entry = { ...msg, resolve, reject }
      if (this.#isOnline()) this.#send(entry)
      else for (const evicted of this.#buffer.push(entry)) this.#drop(evicted)
    })
  }

  /** Sends everything buffered, oldest first; called when the connection is back. */
  flush(): void {
    for (const entry of this.#buffer.drain()) this.#send(entry)
  }

  /** Settles every unsent or unacknowledged message as dropped; later publishes reject. */
  close(): void {
    this.#closed = true
    for (const entry of [...this.#buffer.drain(), ...this.#inFlight]) this.#drop(entry)
    this.#inFlight.clear()
  }

  stats(): TelemetryStats {
    return { sent: this.#sent, buffered: this.#buffer.length, bufferedBytes: this.#buffer.bytes, dropped: this.#dropped }
  }

  #send(entry: Entry): void {
    this.#inFlight.add(entry)
    this.#transmit(entry, (err) => {
      // Already settled as dropped by close(); the transport's late callback is ignored.
      if (!this.#inFlight.delete(entry)) return
      if (err !== undefined) return entry.reject(err)
      this.#sent++
      entry.resolve('sent')
    })
  }

  #drop(entry: Entry): void {
    this.#dropped++
    entry.resolve('dropped')
  }
}
