import { describe, expect, it } from 'vitest'
import { backoffDelay, DEFAULT_BACKOFF, validateBackoff } from '../../../devices/sdk/backoff.js'

describe('backoffDelay', () => {
  const policy = { initialDelayMs: 1000, maxDelayMs: 30_000, factor: 2, jitter: 0 }

  it('should grow exponentially from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, policy, 0.5))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000])
  })

  it('should spread delays by the jitter, within the cap', () => {
    const jittered = { ...policy, jitter: 0.2 }
    expect(backoffDelay(1, jittered, 0)).toBe(800)
    expect(backoffDelay(1, jittered, 0.999_999)).toBe(1200)
    expect(backoffDelay(10, jittered, 0.999_999)).toBe(30_000)
  })

  it('should validate policies, naming the bad option', () => {
    expect(validateBackoff(DEFAULT_BACKOFF)).toBe(DEFAULT_BACKOFF)
    expect(() => validateBackoff({ ...policy, initialDelayMs: 0 })).toThrow(/initialDelayMs/)
    expect(() => validateBackoff({ ...policy, maxDelayMs: 10 })).toThrow(/maxDelayMs/)
    expect(() => validateBackoff({ ...policy, factor: 0.5 })).toThrow(/factor/)
    expect(() => validateBackoff({ ...policy, jitter: 1 })).toThrow(/jitter/)
  })
})
