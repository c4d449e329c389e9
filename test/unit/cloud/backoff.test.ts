import { describe, expect, it } from 'vitest'
import { Backoff, backoffCeiling, fullJitterDelay } from '../../../coordinator/cloud/backoff.js'

const opts = { initialMs: 1000, maxMs: 300_000 }

describe('backoff ceiling', () => {
  it('doubles from initialMs and stops at maxMs', () => {
    const ceilings = Array.from({ length: 12 }, (_, n) => backoffCeiling(n, opts))
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000, 300_000])
  })

  it('stays at maxMs for any number of attempts (no overflow to Infinity or NaN)', () => {
    expect(backoffCeiling(5000, opts)).toBe(300_000)
    expect(backoffCeiling(Number.MAX_SAFE_INTEGER, opts)).toBe(300_000)
  })

  it('honours another growth factor', () => {
    expect([0, 1, 2].map((n) => backoffCeiling(n, { ...opts, factor: 3 }))).toEqual([1000, 3000, 9000])
  })
})

describe('full jitter', () => {
  it('spans [0, ceiling): random 0 gives 0, random just under 1 gives just under the ceiling', () => {
    expect(fullJitterDelay(3, { ...opts, random: () => 0 })).toBe(0)
    expect(fullJitterDelay(3, { ...opts, random: () => 0.5 })).toBe(4000)
    expect(fullJitterDelay(3, { ...opts, random: () => 0.999_999 })).toBe(7999)
  })

  it('spreads delays: 1000 draws at one attempt are diverse and cover the interval', () => {
    const delays = Array.from({ length: 1000 }, () => fullJitterDelay(4, opts))
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...delays)).toBeLessThan(16_000)
    expect(new Set(delays).size).toBeGreaterThan(900)
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length
    expect(mean).toBeGreaterThan(16_000 * 0.4)
    expect(mean).toBeLessThan(16_000 * 0.6)
  })
})

describe('Backoff', () => {
  it('grows per failure with the injected random and starts over after reset', () => {
    const b = new Backoff({ ...opts, random: () => 0.75 })
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([750, 1500, 3000, 6000])
    expect(b.attempt).toBe(4)
    b.reset()
    expect(b.attempt).toBe(0)
    expect(b.next()).toBe(750)
  })

  it('caps at maxMs after enough failures', () => {
    const b = new Backoff({ ...opts, random: () => 0.5 })
    const delays = Array.from({ length: 20 }, () => b.next())
    expect(delays.at(-1)).toBe(150_000)
    expect(Math.max(...delays)).toBe(150_000)
  })

  it('rejects nonsensical settings', () => {
    expect(() => new Backoff({ initialMs: 0, maxMs: 10 })).toThrow(RangeError)
    expect(() => new Backoff({ initialMs: 100, maxMs: 10 })).toThrow(RangeError)
    expect(() => new Backoff({ initialMs: 10, maxMs: 100, factor: 0.5 })).toThrow(RangeError)
  })
})
