import { describe, expect, it } from 'vitest'
import { TokenThrottle } from '../../../coordinator/broker/token-throttle.js'

describe('TokenThrottle', () => {
  const setup = (): { throttle: TokenThrottle; advance(ms: number): void } => {
    let now = 1_000_000
    const throttle = new TokenThrottle({ freeFailures: 2, baseMs: 1000, maxMs: 8000, maxConcurrentChecks: 1 }, () => now)
    return { throttle, advance: (ms) => { now += ms } }
  }
  const fail = (t: TokenThrottle, keys: string[]): ReturnType<TokenThrottle['settle']> => {
    expect(t.admit(keys)).toBeNull()
    return t.settle(keys, false)
  }

  it('lets the free failures through, then doubles the wait with each failure up to maxMs', () => {
    const { throttle, advance } = setup()
    const k = ['id:a']
    expect(fail(throttle, k)).toEqual([])
    expect(fail(throttle, k)).toEqual([{ key: 'id:a', failures: 2, waitMs: 1000 }])
    expect(throttle.admit(k)).toBe(1000)
    const waits: number[] = []
    for (let i = 0; i < 4; i++) {
      advance(throttle.admit(k) ?? 0)
      waits.push(fail(throttle, k)[0]?.waitMs ?? 0)
    }
    expect(waits).toEqual([2000, 4000, 8000, 8000])
    expect(throttle.failed).toBe(6)
    expect(throttle.throttled).toBe(5)
  })

  it('counts running checks: past the free failures only one runs at a time', () => {
    const { throttle } = setup()
    expect(throttle.admit(['addr:x'])).toBeNull()
    expect(throttle.admit(['addr:x'])).toBeNull()
    expect(throttle.admit(['addr:x'])).toBe(1)
  })

  it('forgets the client id on success but keeps the address counting', () => {
    const { throttle } = setup()
    const keys = ['id:a', 'addr:x']
    fail(throttle, keys)
    expect(throttle.admit(keys)).toBeNull()
    throttle.settle(keys, true, ['id:a'])
    expect(fail(throttle, ['id:b', 'addr:x'])).toEqual([{ key: 'addr:x', failures: 2, waitMs: 1000 }])
    expect(throttle.admit(['id:a'])).toBeNull()
  })

  it('forgets a key idle for maxMs after its wait ended', () => {
    const { throttle, advance } = setup()
    fail(throttle, ['id:a'])
    fail(throttle, ['id:a'])
    advance(1000 + 8000)
    expect(throttle.admit(['id:a'])).toBeNull()
    expect(throttle.settle(['id:a'], false)).toEqual([])
  })

  it('derives one check per slot at a time, queues 32 per slot and refuses the rest', async () => {
    const { throttle } = setup()
    const releases: Array<() => void> = []
    const check = (): Promise<boolean> => new Promise((resolve) => releases.push(() => resolve(false)))
    const results = Array.from({ length: 34 }, () => throttle.inSlot(check))
    expect(await results[33]).toEqual({ ran: false })
    expect(releases).toHaveLength(1)
    for (let i = 0; i < 33; i++) {
      releases[i]?.()
      await results[i]
    }
    expect(releases).toHaveLength(33)
  })
})
