/**
 * How an adapter reaches a GPIO line. Levels here are physical (true = pin high); active-low is the
 * adapter's business, so every backend handles it the same way.
 */

export interface GpioLineRequest {
  /** Character device name, e.g. 'gpiochip0' (/dev/gpiochip0). */
  chip: string
  /** Line offset on that chip (BCM GPIO number on a Raspberry Pi). */
  line: number
  direction: 'in' | 'out'
  /** Physical level an output is driven to when it is requested. */
  initial: boolean
}

export interface GpioLine {
  /** The physical level: what an output is driven to, what an input last read. */
  read(): Promise<boolean>
  /** Drives an output line. */
  write(level: boolean): Promise<void>
  /** Level changes of an input line. */
  onEdge(listener: (level: boolean) => void): void
  /** Called at most once, when the line is lost (the process holding it died). */
  onLost(listener: (err: Error) => void): void
  /** Releases the line; idempotent. */
  close(): Promise<void>
}

export interface GpioBackend {
  readonly name: string
  /** Requests the line; rejects with COORD_HARDWARE_BUSY, _TOOL_MISSING or _IO. */
  open(request: GpioLineRequest): Promise<GpioLine>
}

export const lineKey = (chip: string, line: number): string => `${chip}:${line}`
