import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { GpioAdapter, SimulatedGpioBackend, type GpioAdapterOptions } from '../../../hardware/index.js'
import { shadowHarness, until } from './helpers.js'

describe('GPIO adapter on the simulated backend', () => {
  let h: Awaited<ReturnType<typeof shadowHarness>>
  let gpio: SimulatedGpioBackend
  const adapters: GpioAdapter[] = []
  beforeEach(async () => {
    h = await shadowHarness()
    gpio = new SimulatedGpioBackend()
  })
  afterEach(async () => {
    for (const a of adapters.splice(0)) await a.stop()
    await h.close()
  })

  const start = async (o: Partial<GpioAdapterOptions> = {}): Promise<GpioAdapter> => {
    const adapter = new GpioAdapter({
      thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out', activeLow: false, initial: false,
      backend: gpio, shadows: h.shadows, log: silentLogger(), ...o,
    })
    adapters.push(adapter)
    await adapter.start(() => {})
    return adapter
  }
  const reported = async (thing = 'relay-1'): Promise<unknown> => (await h.state(thing))?.reported?.['on']

  it('drives a relay from desired.on and reports it back, clearing the delta', async () => {
    await start()
    expect(gpio.level('gpiochip0', 17)).toBe(false)
    expect(await reported()).toBe(false)
    await h.update('relay-1', { desired: { on: true } })
    await until(async () => (await reported()) === true, 'reported on')
    expect(gpio.level('gpiochip0', 17)).toBe(true)
    expect((await h.state('relay-1'))?.delta).toBeUndefined()
    await h.update('relay-1', { desired: { on: false } })
    await until(async () => (await reported()) === false, 'reported off')
    expect(gpio.writes('gpiochip0', 17)).toEqual([false, true, false])
  })

  it('drives the pin low for on when the line is active-low', async () => {
    await start({ activeLow: true })
    expect(gpio.level('gpiochip0', 17)).toBe(true)
    await h.update('relay-1', { desired: { on: true } })
    await until(async () => (await reported()) === true, 'reported on')
    expect(gpio.level('gpiochip0', 17)).toBe(false)
  })

  it('comes up in the stored desired state, without passing through the initial level', async () => {
    await h.update('relay-1', { desired: { on: true } })
    await start({ initial: false })
    expect(gpio.writes('gpiochip0', 17)).toEqual([true])
    expect(await reported()).toBe(true)
  })

  it('leaves a delta it cannot satisfy alone instead of answering it forever', async () => {
    await start()
    const before = (await h.shadows.get({ thingName: 'relay-1' })).body['version']
    await h.update('relay-1', { desired: { on: 'yes', colour: 'red' } })
    await new Promise((r) => setTimeout(r, 50))
    expect((await h.shadows.get({ thingName: 'relay-1' })).body['version']).toBe((before as number) + 1)
    expect(gpio.writes('gpiochip0', 17)).toEqual([false])
  })

  it('applies a delta that arrives while the line is being opened', async () => {
    const adapter = new GpioAdapter({
      thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out', activeLow: false, initial: false, backend: gpio, shadows: h.shadows, log: silentLogger(),
    })
    adapters.push(adapter)
    const started = adapter.start(() => {})
    await h.update('relay-1', { desired: { on: true } })
    await started
    await until(async () => (await reported()) === true, 'reported on')
    expect(gpio.level('gpiochip0', 17)).toBe(true)
  })

  it('reports an input line at start and at every edge, and ignores desired state', async () => {
    gpio.drive('gpiochip0', 5, true)
    const button = await start({ thing: 'door-1', line: 5, direction: 'in', activeLow: true })
    expect(await reported('door-1')).toBe(false)
    gpio.drive('gpiochip0', 5, false)
    await until(async () => (await reported('door-1')) === true, 'door reported on')
    expect(button.on).toBe(true)
    await h.update('door-1', { desired: { on: false } })
    await new Promise((r) => setTimeout(r, 20))
    expect(gpio.level('gpiochip0', 5)).toBe(false)
  })

  it('reports only the latest level after a burst of edges', async () => {
    await start({ thing: 'button-1', line: 6, direction: 'in' })
    const version = async (): Promise<number> => (await h.shadows.get({ thingName: 'button-1' })).body['version'] as number
    const v0 = await version()
    for (let i = 0; i < 20; i++) gpio.drive('gpiochip0', 6, i % 2 === 0)
    await until(async () => (await reported('button-1')) === false && (await version()) > v0, 'burst reported')
    expect(await version()).toBeLessThanOrEqual(v0 + 2)
  })

  it('releases the line on stop, so it can be requested again', async () => {
    const first = await start()
    await expect(gpio.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false })).rejects.toMatchObject({ code: 'COORD_HARDWARE_BUSY' })
    await first.stop()
    const again = await gpio.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false })
    await again.close()
  })
})
