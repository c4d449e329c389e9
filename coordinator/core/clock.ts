/** Injectable time source so tests can pin timestamps instead of sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** AWS shadow timestamps are whole epoch seconds. */
export const epochSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000)
