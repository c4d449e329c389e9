import { describe, expect, it } from 'vitest'
import { FailureStreak, RESTART_DEFAULTS, backoffDelay } from '../../../coordinator/tasks/restart-policy.js'

const policy = { initialBackoffMs: 100, maxBackoffMs: 1000, brokenAfter: 5, windowMs: 60_000 }

function streak(): { s: FailureStreak; advance(ms: number): void } {
  let now = 1_000_000
  return { s: new FailureStreak(policy, { now: () => now }), advance: (ms) => void (now += ms) }
}

describe('FailureStreak', () => {
  it('lets a healthy sandbox carry on after one failure', () => {
    expect(streak().s.failure(false)).toEqual({ action: 'continue', streak: 1 })
  })

  it('rebuilds a lost sandbox after a 100 ms pause, doubling the pause per failure', () => {
    const { s } = streak()
    expect([1, 2, 3, 4].map(() => s.failure(true))).toEqual([
      { action: 'rebuild', streak: 1, delayMs: 100 },
      { action: 'rebuild', streak: 2, delayMs: 200 },
      { action: 'rebuild', streak: 3, delayMs: 400 },
      { action: 'rebuild', streak: 4, delayMs: 800 },
    ])
  })

  it('rebuilds a surviving sandbox from the second failure in a row', () => {
    const { s } = streak()
    s.failure(false)
    expect(s.failure(false)).toEqual({ action: 'rebuild', streak: 2, delayMs: 100 })
  })

  it('gives up at brokenAfter failures in a row', () => {
    const { s } = streak()
    for (let i = 0; i < 4; i++) s.failure(true)
    expect(s.failure(false)).toEqual({ action: 'broken', streak: 5 })
  })

  it('starts over after a success', () => {
    const { s } = streak()
    for (let i = 0; i < 4; i++) s.failure(true)
    s.success()
    expect(s.failure(true)).toEqual({ action: 'rebuild', streak: 1, delayMs: 100 })
  })

  it('starts over when the streak is older than the window, so rare failures never add up', () => {
    const { s, advance } = streak()
    for (let i = 0; i < 4; i++) s.failure(true)
    advance(policy.windowMs + 1)
    expect(s.failure(false)).toEqual({ action: 'continue', streak: 1 })
  })
})

describe('backoffDelay', () => {
  it('is capped at maxBackoffMs', () => {
    expect(backoffDelay(policy, 10)).toBe(1000)
  })

  it('defaults to 100 ms doubling to 30 s, broken after 5 failures within 10 minutes', () => {
    expect(RESTART_DEFAULTS).toEqual({ initialBackoffMs: 100, maxBackoffMs: 30_000, brokenAfter: 5, windowMs: 600_000 })
    expect([0, 1, 2, 8, 9].map((n) => backoffDelay(RESTART_DEFAULTS, n))).toEqual([100, 200, 400, 25_600, 30_000])
  })
})
