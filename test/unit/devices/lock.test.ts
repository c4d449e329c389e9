import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DoorLock } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

describe('DoorLock', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should move the bolt after the actuation delay, then report it and an event', async () => {
    const link = new FakeLink()
    const lock = new DoorLock(link, { actuationMs: 800 })
    await lock.start()
    expect(link.reported).toEqual({ locked: true, battery: 100, lowBattery: false })
    link.delta({ locked: false })
    await vi.advanceTimersByTimeAsync(700)
    expect(link.reports).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(100)
    expect(link.reported).toEqual({ locked: false, battery: 99.5, lowBattery: false })
    expect(link.telemetry.map((t) => t.data)).toEqual([{ event: 'unlocked', battery: 99.5 }])
    await lock.stop()
  })

  it('should follow the latest target when it changes while the motor runs', async () => {
    const link = new FakeLink()
    const lock = new DoorLock(link, { actuationMs: 800 })
    await lock.start()
    link.delta({ locked: false })
    await vi.advanceTimersByTimeAsync(300)
    link.delta({ locked: true })
    await vi.advanceTimersByTimeAsync(1000)
    expect(lock.locked).toBe(true)
    expect(lock.battery).toBe(100)
    expect(link.reports).toHaveLength(1)
    await lock.stop()
  })

  it('should not move with a flat battery, and warn of a low one', async () => {
    const link = new FakeLink()
    const lock = new DoorLock(link, { batteryPct: 0.3, drainPerActuationPct: 0.5 })
    await lock.start()
    expect(link.reported).toMatchObject({ lowBattery: true })
    link.delta({ locked: false })
    await vi.advanceTimersByTimeAsync(2000)
    expect(lock.locked).toBe(true)
    expect(link.reports).toHaveLength(1)
    await lock.stop()
  })

  it('should drain while idle and report each whole percent lost', async () => {
    const link = new FakeLink()
    const lock = new DoorLock(link, { intervalMs: 3_600_000, idleDrainPctPerHour: 0.6 })
    await lock.start()
    await vi.advanceTimersByTimeAsync(3 * 3_600_000)
    expect(lock.battery).toBeCloseTo(98.2, 5)
    expect(link.reports.map((r) => r.battery)).toEqual([100, 99.4, 98.8])
    await lock.stop()
  })

  it('should cancel a pending actuation when stopped', async () => {
    const link = new FakeLink()
    const lock = new DoorLock(link)
    await lock.start()
    link.delta({ locked: false })
    await lock.stop()
    await vi.advanceTimersByTimeAsync(5000)
    expect(lock.locked).toBe(true)
  })
})
