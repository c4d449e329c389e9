import { describe, expect, it } from 'vitest'
import { systemClock } from '../../../coordinator/core/clock.js'
import { InFlight, PublishGate, TokenBucket } from '../../../coordinator/tasks/host-budget.js'
import { HOST_LIMIT_DEFAULTS, type HostLimits } from '../../../coordinator/tasks/limits.js'

const limits = (extra: Partial<HostLimits>): HostLimits => ({ ...HOST_LIMIT_DEFAULTS, ...extra })

describe('PublishGate', () => {
  it('counts a publish from admission to release, and refuses one that would pass publishBytesInFlight', async () => {
    const gate = new PublishGate('t', limits({ publishBytesInFlight: 1000 }), systemClock)
    const first = await gate.admit(600)
    await expect(gate.admit(500)).rejects.toMatchObject({
      code: 'COORD_TASK_LIMIT', limit: 'publishBytesInFlight',
      message: 'task "t" exceeded its limit publishBytesInFlight: 600 bytes are in flight and this publish has 500; at most 1000 may be (tasks.hostLimits.publishBytesInFlight)',
    })
    first()
    first()
    const second = await gate.admit(1000)
    second()
  })

  it('makes publishes beyond the burst wait for the rate, counting the waiting ones as in flight', async () => {
    let now = 0
    const gate = new PublishGate('t', limits({ publishesPerSecond: 1000, publishBurst: 2, publishesInFlight: 3 }), { now: () => now })
    ;(await gate.admit(1))()
    ;(await gate.admit(1))()
    let third = false
    const waiting = gate.admit(1).then((release) => {
      third = true
      return release
    })
    await Promise.resolve()
    expect(third).toBe(false)
    now += 1
    ;(await waiting)()
    expect(third).toBe(true)
  })

  it('refuses beyond publishesInFlight, and rejects waiting publishes when closed', async () => {
    const gate = new PublishGate('t', limits({ publishesPerSecond: 1, publishBurst: 1, publishesInFlight: 2 }), systemClock)
    await gate.admit(1)
    const waiting = gate.admit(1)
    await expect(gate.admit(1)).rejects.toMatchObject({ code: 'COORD_TASK_LIMIT', limit: 'publishesInFlight' })
    gate.close()
    await expect(waiting).rejects.toMatchObject({ code: 'COORD_CLOSED' })
  })
})

describe('InFlight', () => {
  it('refuses a call beyond its maximum and frees the slot when a call settles, even by throwing', async () => {
    const calls = new InFlight('t', 'invokeCallsInFlight', 1)
    let finish!: () => void
    const running = calls.run(() => new Promise<void>((resolve) => (finish = resolve)))
    await expect(calls.run(async () => 1)).rejects.toMatchObject({ code: 'COORD_TASK_LIMIT', limit: 'invokeCallsInFlight' })
    finish()
    await running
    await expect(calls.run(async () => { throw new Error('boom') })).rejects.toThrow('boom')
    expect(await calls.run(async () => 2)).toBe(2)
  })
})

describe('TokenBucket', () => {
  it('holds at most its burst and refills at its rate', () => {
    let now = 0
    const bucket = new TokenBucket(10, 2, { now: () => now })
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, false])
    expect(bucket.msUntilToken()).toBe(100)
    now += 100
    expect(bucket.take()).toBe(true)
    now += 10_000
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, false])
  })
})
