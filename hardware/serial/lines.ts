/**
 * Splits a byte stream into text lines (LF or CRLF). A device that never sends a line ending (wrong
 * baud rate, binary protocol) would grow the buffer without bound, so a line longer than `maxBytes`
 * is dropped up to its end and counted.
 */
import { StringDecoder } from 'node:string_decoder'

export class LineSplitter {
  /** Keeps a multi-byte character split across two reads whole. */
  readonly #decoder = new StringDecoder('utf8')
  readonly #maxBytes: number
  readonly #emit: (line: string) => void
  #buffer = ''
  #discarding = false
  dropped = 0

  constructor(emit: (line: string) => void, maxBytes = 4096) {
    this.#emit = emit
    this.#maxBytes = maxBytes
  }

  push(chunk: Buffer | string): void {
    const parts = (this.#buffer + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk))).split('\n')
    this.#buffer = parts.pop() ?? ''
    for (const part of parts) this.#line(part)
    if (this.#buffer.length > this.#maxBytes) {
      this.#buffer = ''
      this.#discarding = true
    }
  }

  #line(raw: string): void {
    if (this.#discarding) {
      this.#discarding = false
      this.dropped++
      return
    }
    if (raw.length > this.#maxBytes) {
      this.dropped++
      return
    }
    const line = raw.replace(/\r$/, '')
    if (line.trim() !== '') this.#emit(line)
  }
}
