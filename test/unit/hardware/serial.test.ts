import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import {
  LineSplitter, SerialAdapter, SimulatedSerialBackend, formatReading, parseJsonLine, parseKv, parseRawLine, type SerialAdapterOptions,
} from '../../../hardware/index.js'
import { shadowHarness, until } from './helpers.js'

describe('serial line parsers', () => {
  it('reads key=value sensor lines, numbers as numbers', () => {
    expect(parseKv('T=21.5;H=40')).toEqual({ T: 21.5, H: 40 })
    expect(parseKv('temp:-3.25, rh:55 unit=C')).toEqual({ temp: -3.25, rh: 55, unit: 'C' })
    expect(parseKv('E=1e3;status=OK')).toEqual({ E: 1000, status: 'OK' })
  })

  it('skips noise instead of inventing keys', () => {
    expect(parseKv('\u0000\u00ff garbage')).toBeNull()
    expect(parseKv('=5;9x=1;ok=')).toBeNull()
    expect(parseKv('b@d=1;T=2')).toEqual({ T: 2 })
  })

  it('reads one JSON object per line and nothing else', () => {
    expect(parseJsonLine('{"t":21.5,"nested":{"a":1}}')).toEqual({ t: 21.5, nested: { a: 1 } })
    expect(parseJsonLine('[1,2]')).toBeNull()
    expect(parseJsonLine('21.5')).toBeNull()
    expect(parseJsonLine('{"t":')).toBeNull()
  })

  it('keeps raw lines as text', () => {
    expect(parseRawLine('  $GPGGA,123519,4807.038,N  ')).toEqual({ line: '$GPGGA,123519,4807.038,N' })
    expect(parseRawLine('   ')).toBeNull()
  })

  it('prints simulated readings in each format', () => {
    const r = { temperature: 21.5, humidity: 40 }
    expect(parseKv(formatReading('kv', r))).toEqual({ T: 21.5, H: 40 })
    expect(parseJsonLine(formatReading('json', r))).toEqual(r)
    expect(formatReading('lines', r)).toBe('21.5')
  })
})

describe('LineSplitter', () => {
  it('splits LF and CRLF lines across chunks, multi-byte characters included', () => {
    const lines: string[] = []
    const s = new LineSplitter((l) => lines.push(l))
    const bytes = Buffer.from('T=21.5\r\nname=caf\u00e9\nH=4')
    s.push(bytes.subarray(0, 20))
    s.push(bytes.subarray(20))
    s.push('0\n\n')
    expect(lines).toEqual(['T=21.5', 'name=caf\u00e9', 'H=40'])
  })

  it('drops a line that grows past the cap up to its end, and counts it', () => {
    const lines: string[] = []
    const s = new LineSplitter((l) => lines.push(l), 16)
    s.push('x'.repeat(20))
    s.push('y'.repeat(20))
    s.push('still the same line\nT=1\n')
    s.push(`${'z'.repeat(30)}\nH=2\n`)
    expect(lines).toEqual(['T=1', 'H=2'])
    expect(s.dropped).toBe(2)
  })
})

describe('serial adapter on the simulated backend', () => {
  let h: Awaited<ReturnType<typeof shadowHarness>>
  let serial: SimulatedSerialBackend
  const adapters: SerialAdapter[] = []
  beforeEach(async () => {
    h = await shadowHarness()
    serial = new SimulatedSerialBackend({ intervalMs: 0 })
  })
  afterEach(async () => {
    for (const a of adapters.splice(0)) await a.stop()
    await h.close()
  })

  const start = async (o: Partial<SerialAdapterOptions> = {}): Promise<SerialAdapter> => {
    const adapter = new SerialAdapter({
      thing: 'meter-1', path: '/dev/ttyUSB0', baud: 9600, format: 'kv', minIntervalMs: 0, backend: serial, shadows: h.shadows, log: silentLogger(), ...o,
    })
    adapters.push(adapter)
    await adapter.start(() => {})
    return adapter
  }

  it("puts a sensor's readings in its shadow", async () => {
    await start()
    serial.port('/dev/ttyUSB0')?.emit('T=21.5;H=40')
    await until(async () => (await h.state('meter-1'))?.reported?.['T'] === 21.5, 'reading reported')
    expect((await h.state('meter-1'))?.reported).toEqual({ T: 21.5, H: 40 })
  })

  it('skips lines that do not parse, and counts them', async () => {
    const adapter = await start({ format: 'json' })
    const port = serial.port('/dev/ttyUSB0')
    port?.emit('{"t":')
    port?.emit('{"t":20.25}')
    await until(async () => (await h.state('meter-1'))?.reported?.['t'] === 20.25, 'json reading reported')
    expect(adapter.unparsed).toBe(1)
  })

  it('coalesces readings arriving faster than minIntervalMs: the newest wins', async () => {
    await start({ minIntervalMs: 200 })
    const version = async (): Promise<number> => ((await h.shadows.get({ thingName: 'meter-1' })).body['version'] as number | undefined) ?? 0
    const port = serial.port('/dev/ttyUSB0')
    port?.emit('T=1')
    await until(async () => (await version()) === 1, 'first reading')
    for (let i = 2; i <= 10; i++) port?.emit(`T=${i}`)
    await until(async () => (await h.state('meter-1'))?.reported?.['T'] === 10, 'newest reading')
    expect(await version()).toBe(2)
  })

  it('reports a reading still waiting for its interval when stopped', async () => {
    const adapter = await start({ minIntervalMs: 60_000 })
    const port = serial.port('/dev/ttyUSB0')
    port?.emit('T=1')
    await until(async () => (await h.state('meter-1'))?.reported?.['T'] === 1, 'first reading')
    port?.emit('T=2')
    await adapter.stop()
    expect((await h.state('meter-1'))?.reported?.['T']).toBe(2)
  })

  it('prints plausible readings by itself, one at once and then every interval', async () => {
    const auto = new SimulatedSerialBackend({ intervalMs: 20, seed: 7 })
    const adapter = new SerialAdapter({
      thing: 'sensor-9', path: '/dev/ttyACM0', baud: 115200, format: 'kv', minIntervalMs: 0, backend: auto, shadows: h.shadows, log: silentLogger(),
    })
    adapters.push(adapter)
    await adapter.start(() => {})
    await until(async () => ((await h.shadows.get({ thingName: 'sensor-9' })).body['version'] as number | undefined ?? 0) >= 3, 'three readings')
    const reported = (await h.state('sensor-9'))?.reported ?? {}
    expect(reported['T']).toBeGreaterThan(15)
    expect(reported['T']).toBeLessThan(30)
    expect(reported['H']).toBeGreaterThan(20)
  })
})
