import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { PlugModel, seededRandom, SmartPlug } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

describe('PlugModel', () => {
  it('should read about 0 W with the relay open and about the load with noise when closed', () => {
    const model = new PlugModel(seededRandom(1), { loadW: 60 })
    const off = Array.from({ length: 50 }, () => (model.step(1000), model.power))
    model.switch(true)
    const on = Array.from({ length: 50 }, () => (model.step(1000), model.power))
    for (const w of off) expect(w).toBeLessThan(0.5)
    for (const w of on) expect(Math.abs(w - 60)).toBeLessThan(6)
    expect(new Set(on).size).toBeGreaterThan(5)
  })

  it('should integrate energy: 60 W for an hour is about 60 Wh', () => {
    const model = new PlugModel(seededRandom(2), { loadW: 60, initiallyOn: true })
    for (let i = 0; i < 3600; i++) model.step(1000)
    expect(model.energyWh).toBeGreaterThan(58)
    expect(model.energyWh).toBeLessThan(62)
  })
})

describe('SmartPlug', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should obey desired.on from a delta and report on and power at once', async () => {
    const link = new FakeLink('plug-1')
    const plug = new SmartPlug(link, { seed: 1, loadW: 100 })
    await plug.start()
    expect(link.reported).toMatchObject({ on: false, power: expect.any(Number) })
    link.delta({ on: true })
    await vi.advanceTimersByTimeAsync(0)
    expect(plug.model.on).toBe(true)
    expect(link.reports.at(-1)).toMatchObject({ on: true })
    expect(Math.abs((link.reported.power as number) - 100)).toBeLessThan(10)
    link.delta({ on: false })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reported).toMatchObject({ on: false })
    expect(link.reported.power as number).toBeLessThan(0.5)
    await plug.stop()
  })

  it('should obey the stored desired state at start', async () => {
    const link = new FakeLink()
    link.desired = { on: true }
    const plug = new SmartPlug(link)
    await plug.start()
    expect(plug.model.on).toBe(true)
    expect(link.reported).toMatchObject({ on: true })
    await plug.stop()
  })

  it('should ignore a malformed or unchanged desired.on without reporting, so no delta loop starts', async () => {
    const link = new FakeLink()
    const plug = new SmartPlug(link)
    await plug.start()
    link.delta({ on: 'yes' })
    link.delta({ on: false, colour: 'red' })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reports).toHaveLength(1)
    await plug.stop()
  })

  it('should publish power telemetry every interval and report power that moved past the deadband', async () => {
    const link = new FakeLink()
    const plug = new SmartPlug(link, { intervalMs: 500, powerDeadbandW: 1000 })
    await plug.start()
    link.delta({ on: true })
    await vi.advanceTimersByTimeAsync(2000)
    expect(link.telemetry).toHaveLength(4)
    expect(link.telemetry.at(-1)?.data).toMatchObject({ power: expect.any(Number), energyWh: expect.any(Number) })
    expect(link.reports).toHaveLength(2)
    await plug.stop()
  })
})
