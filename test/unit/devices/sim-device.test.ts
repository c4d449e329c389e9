import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ShadowRejectedError } from '../../../devices/sdk/index.js'
import { createSim, SIM_KINDS, SmartPlug } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

describe('SimDevice lifecycle', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should start every kind against a missing shadow, report, tick and stop cleanly', async () => {
    for (const kind of SIM_KINDS) {
      const link = new FakeLink(`k-${kind}`)
      const sim = createSim(kind, link, { seed: 9, intervalMs: 100 })
      await sim.start()
      expect(link.reports.length, kind).toBe(1)
      expect(link.listening).toBe(true)
      await vi.advanceTimersByTimeAsync(1000)
      await sim.stop()
      expect(sim.running).toBe(false)
      expect(link.listening).toBe(false)
      const sent = link.telemetry.length
      await vi.advanceTimersByTimeAsync(1000)
      expect(link.telemetry.length, kind).toBe(sent)
    }
  })

  it('should count failed reports as errors and pass them to onError instead of throwing', async () => {
    const link = new FakeLink()
    link.updateError = new ShadowRejectedError('update', undefined, { code: 429, message: 'Too Many Requests' })
    const errors: unknown[] = []
    const plug = new SmartPlug(link, { onError: (e) => errors.push(e) })
    await plug.start()
    link.delta({ on: true })
    await vi.advanceTimersByTimeAsync(0)
    expect(plug.stats()).toMatchObject({ updates: 0, errors: 2 })
    expect(errors[0]).toMatchObject({ code: 429 })
    await plug.stop()
  })

  it('should fail start when the shadow cannot be read, and be startable again', async () => {
    const link = new FakeLink()
    const plug = new SmartPlug(link)
    link.getError = new Error('timeout')
    await expect(plug.start()).rejects.toThrow('timeout')
    expect(plug.running).toBe(false)
    expect(link.listening).toBe(false)
    link.getError = undefined
    await plug.start()
    expect(plug.running).toBe(true)
    expect(plug.stats().updates).toBe(1)
    await plug.stop()
  })

  it('should refuse a non-positive interval', () => {
    expect(() => new SmartPlug(new FakeLink(), { intervalMs: 0 })).toThrow(/intervalMs/)
  })
})
