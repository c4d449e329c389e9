/** How an adapter reaches a serial port: lines in, nothing out (sensors talk, they are not told). */

export type SerialFormat = 'kv' | 'json' | 'lines'

export interface SerialPortRequest {
  /** Device file, e.g. /dev/ttyUSB0 or /dev/serial0. */
  path: string
  baud: number
  /** What the device sends; the simulated backend produces it, a real port ignores it. */
  format: SerialFormat
}

export interface SerialConnection {
  /** One call per received line, without its line ending. */
  onLine(listener: (line: string) => void): void
  /** Called at most once, when the port goes away (a USB adapter unplugged, a read error). */
  onLost(listener: (err: Error) => void): void
  /** Closes the port; idempotent. */
  close(): Promise<void>
}

export interface SerialBackend {
  readonly name: string
  open(request: SerialPortRequest): Promise<SerialConnection>
}
