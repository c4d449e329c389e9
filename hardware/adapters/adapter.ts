/** A piece of local hardware presented as a coordinated device with a shadow. */
export interface Adapter {
  /** The thing name: its shadow is the hardware's. */
  readonly thing: string
  readonly kind: 'gpio' | 'serial'
  /**
   * Opens the hardware, starts following its shadow and reports its state. `lost` is called if the
   * hardware goes away afterwards (a holder process died, a USB adapter was unplugged).
   */
  start(lost: (err: Error) => void): Promise<void>
  /** Releases the hardware; safe after a failed start and when called twice. */
  stop(): Promise<void>
}
