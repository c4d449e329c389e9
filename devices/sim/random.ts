/**
 * A seeded pseudo-random source, so a simulated device given the same seed produces the same
 * readings: tests can assert exact behaviour and a swarm run can be replayed.
 */

export interface Random {
  /** Uniform in [0, 1). */
  next(): number
  /** Normally distributed with mean 0 and the given standard deviation. */
  gaussian(stdDev?: number): number
}

/** mulberry32: tiny, fast, and good enough for sensor noise (not for cryptography). */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  // Box-Muller; 1 - next() keeps the logarithm's argument in (0, 1].
  const gaussian = (stdDev = 1): number => stdDev * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())
  return { next, gaussian }
}

/** Rounds to a number of decimals, as a device's firmware formats a reading. */
export function round(value: number, decimals: number): number {
  const f = 10 ** decimals
  return Math.round(value * f) / f
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value))
}
