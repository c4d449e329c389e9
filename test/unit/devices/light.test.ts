import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Light } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

describe('Light', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should obey on, brightness and color, reporting what it shows (clamped, normalised)', async () => {
    const link = new FakeLink()
    const light = new Light(link)
    await light.start()
    expect(link.reported).toEqual({ on: false, brightness: 100, color: '#ffffff' })
    link.delta({ on: true, brightness: 140.4, color: '#FF8800' })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reported).toEqual({ on: true, brightness: 100, color: '#ff8800' })
    link.delta({ brightness: 42.6 })
    await vi.advanceTimersByTimeAsync(0)
    expect(light.state).toEqual({ on: true, brightness: 43, color: '#ff8800' })
    await light.stop()
  })

  it('should ignore a malformed color without reporting', async () => {
    const link = new FakeLink()
    const light = new Light(link)
    await light.start()
    link.delta({ color: 'red' })
    link.delta({ color: '#12345' })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reports).toHaveLength(1)
    expect(light.state.color).toBe('#ffffff')
    await light.stop()
  })

  it('should publish power that follows brightness, near standby when off', async () => {
    const link = new FakeLink()
    const light = new Light(link, { ratedW: 10, seed: 3 })
    link.desired = { on: true, brightness: 50 }
    await light.start()
    await vi.advanceTimersByTimeAsync(1000)
    link.delta({ on: false })
    await vi.advanceTimersByTimeAsync(1000)
    const [dimmed, off] = link.telemetry.map((t) => t.data.power as number)
    expect(dimmed).toBeCloseTo(5, 0)
    expect(off).toBeLessThan(0.5)
    await light.stop()
  })
})
