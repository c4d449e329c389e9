/**
 * Hardware errors carry a stable `code` like the coordinator's own (match on `code`, not class).
 * hardware/ talks to the coordinator through its wire contracts only, so it keeps its own class.
 */
export type HardwareErrorCode =
  /** A command-line tool a backend drives (gpioset, stty) is not installed. */
  | 'COORD_HARDWARE_TOOL_MISSING'
  /** The line or port is held by someone else (another adapter, another process). */
  | 'COORD_HARDWARE_BUSY'
  /** Opening, reading or writing the device failed. */
  | 'COORD_HARDWARE_IO'

export class HardwareError extends Error {
  readonly code: HardwareErrorCode

  constructor(code: HardwareErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'HardwareError'
    this.code = code
  }
}
