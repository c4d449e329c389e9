import { describe, expect, it } from 'vitest'
import { DEFAULT_LIMITS, parseEvery, parseManifest, resolveConfig, type TaskManifest } from '../../../coordinator/protocol/index.js'

const base = { name: 'thermostat', version: '1.2.0', entry: 'src/index.ts', triggers: [{ type: 'invoke' }] }

/** The errors of a manifest that must be refused. */
function errorsOf(json: unknown): string[] {
  const r = parseManifest(json)
  if (r.ok) throw new Error(`expected errors, the manifest was accepted: ${JSON.stringify(r.manifest)}`)
  return r.errors
}

function accepted(json: unknown): TaskManifest {
  const r = parseManifest(json)
  if (!r.ok) throw new Error(`expected the manifest to be accepted: ${r.errors.join('; ')}`)
  return r.manifest
}

describe('parseManifest: shape and defaults', () => {
  it('fills every default of a minimal manifest', () => {
    expect(accepted(base)).toEqual({
      ...base, handler: 'handler', mode: 'on-demand', priority: 'normal',
      permissions: { publish: [], subscribe: [], devices: [], invoke: [] },
      limits: { memoryMb: 32, cpuMsPerCall: 100, wallMsPerCall: 5000, maxConcurrent: 1, queueSize: 1000 },
      config: { schema: { type: 'object' }, defaults: {} },
      requires: [],
    })
    expect(DEFAULT_LIMITS).toEqual(accepted(base).limits)
  })

  it('accepts the full shape from the documentation', () => {
    const m = accepted({
      ...base, description: 'keeps the room warm', handler: 'onEvent', mode: 'long-lived', priority: 'control',
      triggers: [
        { type: 'mqtt', filter: 'things/+/telemetry' }, { type: 'schedule', every: '30s' }, { type: 'schedule', cron: '*/5 * * * *' },
        { type: 'schedule', every: 500 }, { type: 'shadow-delta', devices: ['heater-1', { attributes: { room: 'kitchen' } }], shadowName: 'thermostat' },
        { type: 'invoke' },
      ],
      permissions: { publish: ['gateway/#'], subscribe: ['things/#'], devices: ['heater-1', { attributes: { room: 'kitchen' } }], invoke: ['health-check'] },
      limits: { memoryMb: 64, cpuMsPerCall: 200, wallMsPerCall: 10_000, maxConcurrent: 4, queueSize: 50 },
      config: { schema: { type: 'object', properties: { setpoint: { type: 'number' } } }, defaults: { setpoint: 21 } },
      requires: ['gpio'],
    })
    expect(m.triggers).toHaveLength(6)
    expect(m.limits.maxConcurrent).toBe(4)
  })

  it('refuses names that are not a single safe path component', () => {
    for (const name of ['../x', 'a/b', 'A', '-x', '.hidden', '', 'x'.repeat(64), 'a b', 'a\\b']) {
      expect(errorsOf({ ...base, name })).toContainEqual(expect.stringMatching(/^name: expected 1-63 characters of a-z 0-9 -/))
    }
    expect(accepted({ ...base, name: 'x'.repeat(63) }).name).toHaveLength(63)
  })

  it('requires a semantic version, prerelease allowed', () => {
    expect(accepted({ ...base, version: '1.0.0-rc.1' }).version).toBe('1.0.0-rc.1')
    for (const version of ['1.2', 'v1.2.0', '01.2.0', '1.2.0+build', '1.2.0-']) {
      expect(errorsOf({ ...base, version })).toEqual([`version: expected a semantic version MAJOR.MINOR.PATCH[-prerelease], got "${version}"`])
    }
  })

  it('keeps the entry inside the task directory', () => {
    for (const entry of ['../index.ts', 'src/../../x.ts', '/abs/index.ts', 'C:/x.ts', 'src\\index.ts', 'src//index.ts', '']) {
      expect(errorsOf({ ...base, entry })[0]).toMatch(/^entry: expected a relative path inside the task directory/)
    }
    expect(accepted({ ...base, entry: './src/index.ts' }).entry).toBe('./src/index.ts')
  })

  it('names each missing required field', () => {
    expect(errorsOf({})).toEqual([
      'name: is required (expected 1-63 characters of a-z 0-9 - starting with a letter or digit)',
      'version: is required (expected a semantic version MAJOR.MINOR.PATCH[-prerelease])',
      'entry: is required (expected string)',
    ])
    expect(errorsOf(5)).toEqual(['(root): expected object, got 5'])
  })

  it('refuses unknown keys at every level, naming them', () => {
    expect(errorsOf({ ...base, permisions: {} })).toEqual(['(root): unknown key "permisions"'])
    expect(errorsOf({ ...base, limits: { memory: 32 } })).toEqual(['limits: unknown key "memory"'])
    expect(errorsOf({ ...base, triggers: [{ type: 'mqtt', filter: 'a', qos: 1 }], permissions: { subscribe: ['a'] } })).toEqual(['triggers[0]: unknown key "qos"'])
  })

  it('checks enums, the handler identifier and capability tags', () => {
    expect(errorsOf({ ...base, mode: 'forever' })).toEqual(['mode: expected one of "on-demand", "long-lived", got "forever"'])
    expect(errorsOf({ ...base, priority: 'high' })).toEqual(['priority: expected one of "control", "normal", "bulk", got "high"'])
    expect(errorsOf({ ...base, handler: 'my-handler' })).toEqual(['handler: expected a JavaScript identifier, got "my-handler"'])
    expect(errorsOf({ ...base, requires: ['GPIO'] })[0]).toMatch(/^requires\[0\]: expected a capability tag/)
    expect(accepted({ ...base, requires: ['gpio', 'arch=arm64'] }).requires).toEqual(['gpio', 'arch=arm64'])
  })
})

describe('parseManifest: limits', () => {
  it('names the limit, its range and the value given', () => {
    expect(errorsOf({ ...base, limits: { memoryMb: 1024 } })).toEqual(['limits.memoryMb: expected an integer from 8 to 512, got 1024'])
    expect(errorsOf({ ...base, limits: { cpuMsPerCall: 0 } })).toEqual(['limits.cpuMsPerCall: expected an integer from 1 to 60000, got 0'])
    expect(errorsOf({ ...base, limits: { maxConcurrent: 1.5 } })).toEqual(['limits.maxConcurrent: expected an integer from 1 to 64, got 1.5'])
    expect(errorsOf({ ...base, limits: { queueSize: '10' } })).toEqual(['limits.queueSize: expected an integer from 1 to 100000, got "10"'])
    expect(errorsOf({ ...base, limits: { wallMsPerCall: 700_000 } })).toEqual(['limits.wallMsPerCall: expected an integer from 1 to 600000, got 700000'])
  })

  it('refuses a wall-time limit below the CPU-time limit', () => {
    expect(errorsOf({ ...base, limits: { cpuMsPerCall: 500, wallMsPerCall: 100 } }))
      .toEqual(['limits.wallMsPerCall: expected at least limits.cpuMsPerCall (500), got 100'])
  })

  it('keeps defaults for the limits left out', () => {
    expect(accepted({ ...base, limits: { memoryMb: 8 } }).limits).toEqual({ ...DEFAULT_LIMITS, memoryMb: 8 })
  })
})

describe('parseManifest: triggers', () => {
  const subscribe = (filters: string[]) => ({ permissions: { subscribe: filters } })

  it('needs every mqtt filter to be valid and covered by a subscribe permission', () => {
    expect(accepted({ ...base, ...subscribe(['things/#']), triggers: [{ type: 'mqtt', filter: 'things/+/telemetry' }] })).toBeTruthy()
    expect(errorsOf({ ...base, ...subscribe(['things/+/status']), triggers: [{ type: 'mqtt', filter: 'things/+/telemetry' }] }))
      .toEqual(['triggers[0].filter: "things/+/telemetry" is not covered by any permissions.subscribe filter'])
    expect(errorsOf({ ...base, triggers: [{ type: 'mqtt', filter: 'things/+/telemetry' }] }))
      .toEqual(['triggers[0].filter: "things/+/telemetry" is not covered by any permissions.subscribe filter'])
    expect(errorsOf({ ...base, ...subscribe(['#']), triggers: [{ type: 'mqtt', filter: 'a/#/b' }] }))
      .toEqual(['triggers[0].filter: expected a valid MQTT topic filter, got "a/#/b"'])
    expect(errorsOf({ ...base, permissions: { publish: ['a+'] } })).toEqual(['permissions.publish[0]: expected a valid MQTT topic filter, got "a+"'])
  })

  it('accepts every in ms, s, m, h or a number of milliseconds, from 100 ms', () => {
    for (const every of ['500ms', '30s', '5m', '1h', 100, 60_000]) expect(accepted({ ...base, triggers: [{ type: 'schedule', every }] })).toBeTruthy()
    for (const every of ['99ms', 99, '2d', '1.5s', '30 s', '', -1, 2 ** 31]) {
      expect(errorsOf({ ...base, triggers: [{ type: 'schedule', every }] })[0]).toMatch(/^triggers\[0\]\.every: expected a duration like "500ms", "30s", "5m", "1h" or a number of milliseconds/)
    }
  })

  it('validates cron expressions with croner, naming the problem', () => {
    expect(accepted({ ...base, triggers: [{ type: 'schedule', cron: '*/5 * * * *' }] })).toBeTruthy()
    expect(errorsOf({ ...base, triggers: [{ type: 'schedule', cron: '61 * * * *' }] })).toEqual(['triggers[0].cron: invalid cron expression "61 * * * *": Invalid value for minute: 61'])
    expect(errorsOf({ ...base, triggers: [{ type: 'schedule', cron: 'every minute' }] })[0]).toMatch(/^triggers\[0\]\.cron: invalid cron expression "every minute": /)
    expect(errorsOf({ ...base, triggers: [{ type: 'schedule', cron: '0 0 30 2 *' }] })).toEqual(['triggers[0].cron: invalid cron expression "0 0 30 2 *": it never fires'])
  })

  it('needs exactly one of every and cron', () => {
    const message = 'triggers[0]: a schedule trigger needs exactly one of "every" or "cron"'
    expect(errorsOf({ ...base, triggers: [{ type: 'schedule' }] })).toEqual([message])
    expect(errorsOf({ ...base, triggers: [{ type: 'schedule', every: '1s', cron: '* * * * *' }] })).toEqual([message])
  })

  it('needs shadow-delta devices allowed by permissions.devices', () => {
    const permissions = { devices: ['heater-1', { attributes: { room: 'kitchen', floor: '1' } }] }
    const trigger = (devices: unknown[]) => ({ ...base, permissions, triggers: [{ type: 'shadow-delta', devices }] })
    expect(accepted(trigger(['heater-1', { attributes: { floor: '1', room: 'kitchen' } }]))).toBeTruthy()
    expect(errorsOf(trigger(['heater-2']))).toEqual(['triggers[0].devices[0]: device "heater-2" is not in permissions.devices'])
    expect(errorsOf(trigger([{ attributes: { room: 'kitchen' } }])))
      .toEqual(['triggers[0].devices[0]: selector {"room":"kitchen"} does not equal any attribute selector in permissions.devices'])
    expect(errorsOf(trigger([]))).toEqual(['triggers[0].devices: expected at least one device or selector'])
  })

  it('checks device names, selectors and shadow names', () => {
    const trigger = (t: object) => errorsOf({ ...base, triggers: [{ type: 'shadow-delta', ...t }] })
    expect(trigger({ devices: ['bad/name'] })).toEqual(['triggers[0].devices[0]: expected a device name (1-128 characters of a-z A-Z 0-9 : _ -), got "bad/name"'])
    expect(trigger({ devices: [{ attributes: {} }] })).toEqual(['triggers[0].devices[0].attributes: expected at least one attribute (an empty selector would match every device)'])
    expect(trigger({ devices: [{ room: 'x' }] })[0]).toMatch(/^triggers\[0\]\.devices\[0\]: expected \{"attributes"/)
    expect(trigger({ devices: ['a'], shadowName: 'x/y' })).toContain('triggers[0].shadowName: expected a shadow name (1-64 characters of a-z A-Z 0-9 $ : _ -), got "x/y"')
  })

  it('names an unknown trigger type', () => {
    expect(errorsOf({ ...base, triggers: [{ type: 'http' }] })).toEqual(['triggers[0].type: expected one of "mqtt", "schedule", "shadow-delta", "invoke", got "http"'])
  })

  it('refuses an on-demand task no trigger can start, and a long-lived handler named start', () => {
    expect(errorsOf({ ...base, triggers: [] })[0]).toMatch(/^triggers: an on-demand task with no trigger never runs/)
    expect(accepted({ ...base, mode: 'long-lived', triggers: [] }).mode).toBe('long-lived')
    expect(errorsOf({ ...base, mode: 'long-lived', handler: 'start' })[0]).toMatch(/^handler: "start" is the start function/)
  })

  it('checks invoke permissions are task names', () => {
    expect(errorsOf({ ...base, permissions: { invoke: ['../x'] } })[0]).toMatch(/^permissions\.invoke\[0\]: expected 1-63 characters/)
  })
})

describe('parseManifest: config', () => {
  const schema = {
    type: 'object',
    properties: { setpoint: { type: 'number', minimum: 5 }, sensor: { type: 'string' }, nested: { type: 'object', properties: { k: { type: 'integer' } } } },
    required: ['sensor'],
    additionalProperties: false,
  }

  it('validates the defaults against the schema, naming the path', () => {
    expect(errorsOf({ ...base, config: { schema, defaults: { setpoint: 'warm' } } })).toEqual(['config.defaults.setpoint: must be number, got "warm"'])
    expect(errorsOf({ ...base, config: { schema, defaults: { nested: { k: 1.5 } } } })).toEqual(['config.defaults.nested.k: must be integer, got 1.5'])
    expect(errorsOf({ ...base, config: { schema, defaults: { extra: 1 } } })).toEqual(['config.defaults.extra: is not allowed by the config schema'])
  })

  it('lets defaults leave out required properties: each deployment supplies them', () => {
    expect(accepted({ ...base, config: { schema, defaults: { setpoint: 21 } } }).config.defaults).toEqual({ setpoint: 21 })
  })

  it('refuses a schema ajv cannot compile', () => {
    expect(errorsOf({ ...base, config: { schema: { type: 'object', propertis: {} } } })).toEqual(['config.schema: invalid JSON Schema: strict mode: unknown keyword: "propertis"'])
    expect(errorsOf({ ...base, config: { schema: { type: 'nope' } } })[0]).toMatch(/^config\.schema: invalid JSON Schema: /)
    expect(errorsOf({ ...base, config: { schema: [] } })).toEqual(['config.schema: expected a JSON Schema object, got []'])
  })
})

describe('resolveConfig', () => {
  const manifest = accepted({
    ...base,
    config: {
      schema: {
        type: 'object',
        properties: { sensor: { type: 'string' }, setpoint: { type: 'number' }, tuning: { type: 'object', properties: { p: { type: 'number' }, i: { type: 'number' } } }, list: { type: 'array' } },
        required: ['sensor'],
        additionalProperties: false,
      },
      defaults: { setpoint: 21, tuning: { p: 1, i: 0.1 }, list: [1, 2] },
    },
  })

  it('deep-merges overrides over defaults; arrays replace', () => {
    expect(resolveConfig(manifest, { sensor: 's1', tuning: { i: 0.2 }, list: [3] }))
      .toEqual({ ok: true, config: { sensor: 's1', setpoint: 21, tuning: { p: 1, i: 0.2 }, list: [3] } })
  })

  it('reports schema violations as config.<path>: message', () => {
    expect(resolveConfig(manifest)).toEqual({ ok: false, errors: ['config.sensor: is required'] })
    expect(resolveConfig(manifest, { sensor: 's1', tuning: { p: 'high' }, other: true })).toEqual({
      ok: false, errors: ['config.other: is not allowed by the config schema', 'config.tuning.p: must be number, got "high"'],
    })
    expect(resolveConfig(manifest, [] as unknown as object)).toEqual({ ok: false, errors: ['config: expected an object of overrides, got []'] })
  })

  it('returns a copy: changing it leaves the manifest as it was', () => {
    const r = resolveConfig(manifest, { sensor: 's1' })
    if (!r.ok) throw new Error(r.errors.join())
    ;(r.config['list'] as number[]).push(9)
    ;(r.config['tuning'] as Record<string, number>)['p'] = 7
    expect(manifest.config.defaults).toEqual({ setpoint: 21, tuning: { p: 1, i: 0.1 }, list: [1, 2] })
  })

  it('keeps a "__proto__" key a plain key', () => {
    const open = accepted({ ...base, config: { schema: { type: 'object' }, defaults: {} } })
    const r = resolveConfig(open, JSON.parse('{"__proto__": {"polluted": true}}') as object)
    if (!r.ok) throw new Error(r.errors.join())
    expect(Object.keys(r.config)).toEqual(['__proto__'])
    expect((r.config as { polluted?: unknown }).polluted).toBeUndefined()
  })
})

describe('parseEvery', () => {
  it('converts each unit to milliseconds', () => {
    expect([parseEvery('500ms'), parseEvery('30s'), parseEvery('5m'), parseEvery('1h'), parseEvery(250)]).toEqual([500, 30_000, 300_000, 3_600_000, 250])
  })

  it('throws naming the accepted forms', () => {
    expect(() => parseEvery('50ms')).toThrow(/invalid schedule period "50ms": expected "500ms", "30s", "5m", "1h"/)
    expect(() => parseEvery('soon')).toThrow(RangeError)
  })
})
