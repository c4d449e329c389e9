import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SensorModel, seededRandom, TemperatureSensor } from '../../../devices/sim/index.js'
import { FakeLink } from './fake-link.js'

const readings = (seed: number, steps: number): Array<{ temperature: number; humidity: number }> => {
  const model = new SensorModel(seededRandom(seed))
  return Array.from({ length: steps }, () => {
    model.step(1000)
    return model.read()
  })
}

describe('SensorModel', () => {
  it('should produce the same readings for the same seed and different ones for another', () => {
    expect(readings(7, 20)).toEqual(readings(7, 20))
    expect(readings(7, 20)).not.toEqual(readings(8, 20))
  })

  it('should drift slowly around the base and stay within physical bounds over a day', () => {
    const model = new SensorModel(seededRandom(3), { baseTemperature: 21, baseHumidity: 45 })
    const day = Array.from({ length: 24 * 60 }, () => {
      model.step(60_000)
      return model.read()
    })
    for (const r of day) {
      expect(r.temperature).toBeGreaterThan(17)
      expect(r.temperature).toBeLessThan(25)
      expect(r.humidity).toBeGreaterThanOrEqual(0)
      expect(r.humidity).toBeLessThanOrEqual(100)
    }
    // Noise without drift would stay within a few tenths; a day of drift moves further.
    const temps = day.map((r) => r.temperature)
    expect(Math.max(...temps) - Math.min(...temps)).toBeGreaterThan(0.5)
  })

  it('should change little from one second to the next (noise, not jumps)', () => {
    const series = readings(5, 100).map((r) => r.temperature)
    for (let i = 1; i < series.length; i++) expect(Math.abs(series[i]! - series[i - 1]!)).toBeLessThan(0.5)
  })
})

describe('TemperatureSensor', () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it('should report its reading at start and publish telemetry every interval', async () => {
    const link = new FakeLink('sensor-1')
    const sensor = new TemperatureSensor(link, { seed: 1, intervalMs: 1000 })
    await sensor.start()
    expect(link.reports).toHaveLength(1)
    expect(link.reported).toEqual({ temperature: expect.any(Number), humidity: expect.any(Number) })
    await vi.advanceTimersByTimeAsync(5000)
    expect(link.telemetry).toHaveLength(5)
    expect(link.telemetry[0]?.data).toEqual({ temperature: expect.any(Number), humidity: expect.any(Number) })
    await sensor.stop()
    await vi.advanceTimersByTimeAsync(5000)
    expect(link.telemetry).toHaveLength(5)
  })

  it('should report to the shadow only when a reading moved past the deadband', async () => {
    const quiet = new FakeLink()
    await new TemperatureSensor(quiet, { seed: 2, deadband: { temperature: 100, humidity: 100 } }).start()
    const chatty = new FakeLink()
    await new TemperatureSensor(chatty, { seed: 2, deadband: { temperature: 0, humidity: 0 } }).start()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(quiet.reports).toHaveLength(1)
    expect(chatty.reports).toHaveLength(11)
  })

  it('should publish CBOR when asked', async () => {
    const link = new FakeLink()
    await new TemperatureSensor(link, { telemetryEncoding: 'cbor' }).start()
    await vi.advanceTimersByTimeAsync(1000)
    expect(link.telemetry[0]?.options).toMatchObject({ encoding: 'cbor' })
  })
})
