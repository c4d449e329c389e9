import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../../coordinator/config/index.js'

describe('hardware config', () => {
  const load = (hardware: Record<string, unknown>, log: Record<string, unknown> = {}): ReturnType<typeof loadConfig> => loadConfig({ overrides: { hardware, log } })

  it('defaults to auto-detection, the real root and no adapters', () => {
    expect(loadConfig().hardware).toEqual({ profile: 'auto', root: '/', gpio: [], serial: [] })
  })

  it('fills each adapter entry with its defaults', () => {
    const c = load({
      gpio: [{ thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out' }],
      serial: [{ thing: 'meter-1', path: '/dev/ttyUSB0', baud: 9600, parser: 'kv' }],
    })
    expect(c.hardware.gpio).toEqual([{ thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out', activeLow: false, initial: false, backend: 'gpiod' }])
    expect(c.hardware.serial).toEqual([{ thing: 'meter-1', path: '/dev/ttyUSB0', baud: 9600, parser: 'kv', backend: 'tty', minIntervalMs: 1000 }])
  })

  it('names the bad key of an adapter entry', () => {
    expect(() => load({ gpio: [{ thing: 'relay-1', chip: '/dev/gpiochip0', line: 17, direction: 'out' }] })).toThrow(/hardware\.gpio\.0\.chip: expected a chip name like 'gpiochip0'/)
    expect(() => load({ gpio: [{ thing: 'relay 1', chip: 'gpiochip0', line: 17, direction: 'out' }] })).toThrow(/hardware\.gpio\.0\.thing: expected a thing name/)
    expect(() => load({ gpio: [{ thing: 'r', chip: 'gpiochip0', line: 17, direction: 'both' }] })).toThrow(/hardware\.gpio\.0\.direction:/)
    expect(() => load({ serial: [{ thing: 'm', path: '/dev/ttyUSB0', baud: 9601, parser: 'kv' }] })).toThrow(/hardware\.serial\.0\.baud: expected one of 1200, .*115200/)
    expect(() => load({ serial: [{ thing: 'm', path: 'ttyUSB0', baud: 9600, parser: 'kv' }] })).toThrow(/hardware\.serial\.0\.path:/)
    expect(() => load({ serial: [{ thing: 'm', path: '/dev/ttyUSB0', baud: 9600, parser: 'csv' }] })).toThrow(/hardware\.serial\.0\.parser:/)
    expect(() => load({ gpio: [{ thing: 'r', chip: 'gpiochip0', line: 17, direction: 'out', pull: 'up' }] })).toThrow(/hardware\.gpio\.0: unknown key\(s\) 'pull'/)
  })

  it('refuses a thing, a line or a port claimed twice, naming both entries', () => {
    const relay = { thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out' }
    expect(() => load({ gpio: [relay, { ...relay, line: 27 }] })).toThrow(/hardware\.gpio\.1\.thing: thing 'relay-1' is already used by hardware\.gpio\.0/)
    expect(() => load({ gpio: [relay, { ...relay, thing: 'relay-2' }] })).toThrow(/hardware\.gpio\.1\.line: gpiochip0 line 17 is already used by hardware\.gpio\.0/)
    const meter = { thing: 'meter-1', path: '/dev/ttyUSB0', baud: 9600, parser: 'kv' }
    expect(() => load({ gpio: [relay], serial: [{ ...meter, thing: 'relay-1' }] })).toThrow(/hardware\.serial\.0\.thing: thing 'relay-1' is already used by hardware\.gpio\.0/)
    expect(() => load({ serial: [meter, { ...meter, thing: 'meter-2' }] })).toThrow(/hardware\.serial\.1\.path: port \/dev\/ttyUSB0 is already used by hardware\.serial\.0/)
  })

  it('resolves the log file and bounds its size', () => {
    expect(load({}, { file: 'logs/coordinator.log' }).log.file).toMatch(/^\/.*\/logs\/coordinator\.log$/)
    expect(() => load({}, { maxBytes: 1000 })).toThrow(/log\.maxBytes: .*>=65536/)
    expect(() => load({}, { maxFiles: 0 })).toThrow(/log\.maxFiles: .*>=1/)
  })
})
