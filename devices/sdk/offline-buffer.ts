/**
 * A bounded FIFO for messages published while the device is offline. It is capped by count and by
 * bytes because a gateway outage can last hours and a small device has little memory; when full,
 * the oldest messages go first, since for telemetry the newest readings are worth the most.
 */

export interface OfflineBufferLimits {
  /** At most this many messages are held. */
  maxMessages: number
  /** At most this many payload bytes are held. */
  maxBytes: number
}

export const DEFAULT_OFFLINE_BUFFER_LIMITS: OfflineBufferLimits = Object.freeze({ maxMessages: 1000, maxBytes: 1024 * 1024 })

export class OfflineBuffer<T> {
  readonly #limits: OfflineBufferLimits
  readonly #sizeOf: (item: T) => number
  #items: T[] = []
  #bytes = 0

  constructor(limits: OfflineBufferLimits, sizeOf: (item: T) => number) {
    if (!(limits.maxMessages >= 1) || !(limits.maxBytes >= 1)) {
      throw new RangeError(`offline buffer limits must be at least 1, got maxMessages=${limits.maxMessages} maxBytes=${limits.maxBytes}`)
    }
    this.#limits = limits
    this.#sizeOf = sizeOf
  }

  get length(): number {
    return this.#items.length
  }

  get bytes(): number {
    return this.#bytes
  }

  /**
   * Appends an item and returns the items dropped to make room, oldest first; the caller counts
   * them. An item larger than the whole byte cap is dropped itself rather than emptying the buffer.
   */
  push(item: T): T[] {
    const size = this.#sizeOf(item)
    if (size > this.#limits.maxBytes) return [item]
    const evicted: T[] = []
    while (this.#items.length >= this.#limits.maxMessages || this.#bytes + size > this.#limits.maxBytes) {
      evicted.push(this.#shift())
    }
    this.#items.push(item)
    this.#bytes += size
    return evicted
  }

  /** Removes and returns everything, in the order it was pushed. */
  drain(): T[] {
    const items = this.#items
    this.#items = []
    this.#bytes = 0
    return items
  }

  #shift(): T {
    const item = this.#items.shift() as T
    this.#bytes -= this.#sizeOf(item)
    return item
  }
}
