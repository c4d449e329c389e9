import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextHvac, seededRandom, Thermostat, ThermostatModel } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

const minutes = (model: ThermostatModel, n: number): number[] =>
  Array.from({ length: n }, () => {
    model.step(60_000)
    return model.temperature
  })

describe('nextHvac (bang-bang with hysteresis)', () => {
  it.each([
    ['heat', 'idle', -1, 'heating'],
    ['heat', 'heating', 0.1, 'heating'],
    ['heat', 'heating', 0.5, 'idle'],
    ['heat', 'idle', -0.1, 'idle'],
    ['cool', 'idle', 1, 'cooling'],
    ['cool', 'cooling', -0.5, 'idle'],
    ['off', 'heating', -5, 'idle'],
  ] as const)('mode %s, %s, %s °C from the setpoint -> %s', (mode, current, error, expected) => {
    expect(nextHvac(mode, current, error, 0.3)).toBe(expected)
  })
})

describe('ThermostatModel', () => {
  it('should heat the room toward the setpoint, then hold it within the band', () => {
    const model = new ThermostatModel(seededRandom(1), { initialTemperature: 18, setpoint: 22, mode: 'heat' })
    const temps = minutes(model, 120)
    expect(temps[10]!).toBeGreaterThan(18.5)
    for (let i = 1; i < 20; i++) expect(temps[i]!).toBeGreaterThan(temps[i - 1]!)
    for (const t of temps.slice(60)) expect(Math.abs(t - 22)).toBeLessThan(0.6)
    expect(Math.abs(model.measure() - model.temperature)).toBeLessThan(0.3)
  })

  it('should drift toward the outside temperature when off, and cool when cooling', () => {
    const off = new ThermostatModel(seededRandom(1), { initialTemperature: 20, ambient: 10, mode: 'off' })
    expect(minutes(off, 120).at(-1)!).toBeLessThan(16)
    const cool = new ThermostatModel(seededRandom(1), { initialTemperature: 26, ambient: 30, setpoint: 22, mode: 'cool' })
    expect(minutes(cool, 60).at(-1)!).toBeLessThan(23)
  })
})

describe('Thermostat', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should obey desired setpoint and mode and report them with what it measures', async () => {
    const link = new FakeLink()
    const t = new Thermostat(link, { seed: 4, initialTemperature: 18 })
    await t.start()
    expect(link.reported).toMatchObject({ mode: 'heat', setpoint: 20, hvac: 'heating' })
    link.delta({ setpoint: 16, mode: 'cool' })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reported).toMatchObject({ mode: 'cool', setpoint: 16, hvac: 'cooling', temperature: expect.any(Number) })
    await t.stop()
  })

  it('should clamp an out-of-range setpoint and report it once, not on every repeated delta', async () => {
    const link = new FakeLink()
    const t = new Thermostat(link)
    await t.start()
    link.delta({ setpoint: 50 })
    await vi.advanceTimersByTimeAsync(0)
    link.delta({ setpoint: 50 })
    link.delta({ mode: 'sauna' })
    await vi.advanceTimersByTimeAsync(0)
    expect(link.reports.filter((r) => 'setpoint' in r).map((r) => r.setpoint)).toEqual([20, 35])
    await t.stop()
  })

  it('should publish its temperature every tick and report when the heater switches', async () => {
    const link = new FakeLink()
    const t = new Thermostat(link, { intervalMs: 60_000, initialTemperature: 19, setpoint: 20 })
    await t.start()
    await vi.advanceTimersByTimeAsync(30 * 60_000)
    expect(link.telemetry).toHaveLength(30)
    expect(link.reports.some((r) => r.hvac === 'idle')).toBe(true)
    await t.stop()
  })
})
