import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { anonymousLoopbackAllowed, DEFAULTS, loadConfig } from '../../../coordinator/config/index.js'
import { HOST_LIMIT_DEFAULTS } from '../../../coordinator/tasks/limits.js'
import { tempDir } from '../../helpers/tmp.js'

describe('loadConfig', () => {
  const tmp = tempDir()
  afterAll(() => tmp.remove())
  const file = (name: string, body: unknown): string => {
    const path = join(tmp.dir, name)
    writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body))
    return path
  }

  it('needs no file: embedded defaults, data dir made absolute', () => {
    const c = loadConfig()
    expect(c.listeners.mqtt).toEqual({ host: '127.0.0.1', port: 1883 })
    expect(c.dataDir).toMatch(/^\//)
    expect(c.shadow).toEqual(DEFAULTS.shadow)
  })

  it('merges defaults < file < overrides, key by key', () => {
    const c = loadConfig({ file: file('a.json', { listeners: { mqtt: { port: 1999 } }, shadow: { maxDepth: 8 } }), overrides: { shadow: { maxDepth: 5 } } })
    expect(c.listeners.mqtt).toEqual({ host: '127.0.0.1', port: 1999 })
    expect(c.shadow.maxDepth).toBe(5)
    expect(c.shadow.maxStateBytes).toBe(8192)
  })

  it('refuses web.allowedHosts and web.allowedOrigins that are not a host name or an origin, naming the entry', () => {
    expect(loadConfig({ overrides: { web: { allowedHosts: ['gateway.lan'], allowedOrigins: ['http://console.lan:8080'] } } }).web)
      .toEqual({ allowedHosts: ['gateway.lan'], allowedOrigins: ['http://console.lan:8080'] })
    expect(() => loadConfig({ overrides: { web: { allowedHosts: ['gateway.lan:8087'] } } })).toThrow(/web\.allowedHosts\.0: expected a host name without scheme or port/)
    expect(() => loadConfig({ overrides: { web: { allowedOrigins: ['http://console.lan/app'] } } })).toThrow(/web\.allowedOrigins\.0: expected an origin/)
    expect(() => loadConfig({ overrides: { web: { allowedOrigins: ['*'] } } })).toThrow(/web\.allowedOrigins\.0/)
  })

  it('takes per-task host limits and the memory budget, with defaults equal to the task service\'s, and names a bad one', () => {
    expect(loadConfig().tasks.hostLimits).toEqual(HOST_LIMIT_DEFAULTS)
    const c = loadConfig({ overrides: { tasks: { memoryBudgetMb: 300, hostLimits: { publishesPerSecond: 20 } } } })
    expect(c.tasks).toMatchObject({ memoryBudgetMb: 300, hostLimits: { ...HOST_LIMIT_DEFAULTS, publishesPerSecond: 20 } })
    expect(() => loadConfig({ overrides: { tasks: { hostLimits: { publishesInFlight: 0 } } } })).toThrow(/tasks\.hostLimits\.publishesInFlight: .*>=1/)
    expect(() => loadConfig({ overrides: { tasks: { memoryBudgetMb: 10 } } })).toThrow(/tasks\.memoryBudgetMb: .*>=64/)
  })

  it('turns a listener off with null', () => {
    expect(loadConfig({ overrides: { listeners: { ws: null } } }).listeners.ws).toBeNull()
  })

  it('names the bad key and what was expected', () => {
    expect(() => loadConfig({ file: file('b.json', { listeners: { mqtt: { port: 'x' } } }) }))
      .toThrow(/listeners\.mqtt\.port: .*expected number/)
    expect(() => loadConfig({ overrides: { shadow: { maxDepth: 0 } } })).toThrow(/shadow\.maxDepth: .*>=1/)
    expect(() => loadConfig({ overrides: { store: { synchronous: 'fast' } } })).toThrow(/store\.synchronous: .*"full"\|"normal"/)
  })

  it('checks tasks.caps against each other and the global slots, naming the key', () => {
    expect(loadConfig().tasks.caps).toEqual({ maxConcurrent: null, queueSize: 5000, cpuMsPerCall: 1000, wallMsPerCall: 30_000 })
    expect(() => loadConfig({ overrides: { tasks: { maxConcurrentCalls: 2, caps: { maxConcurrent: 4 } } } }))
      .toThrow(/tasks\.caps\.maxConcurrent: expected at most tasks\.maxConcurrentCalls \(2\), got 4/)
    expect(() => loadConfig({ overrides: { tasks: { caps: { cpuMsPerCall: 2000, wallMsPerCall: 1000 } } } }))
      .toThrow(/tasks\.caps\.wallMsPerCall: expected at least tasks\.caps\.cpuMsPerCall \(2000\), got 1000/)
    expect(() => loadConfig({ overrides: { tasks: { caps: { queueSize: 0 } } } })).toThrow(/tasks\.caps\.queueSize: .*>=1/)
  })

  it('names the broker bound that is out of range', () => {
    expect(() => loadConfig({ overrides: { broker: { maxPacketBytes: 10 } } })).toThrow(/broker\.maxPacketBytes: .*>=1024/)
    expect(() => loadConfig({ overrides: { broker: { connectTimeoutMs: 0 } } })).toThrow(/broker\.connectTimeoutMs: .*>=100/)
    expect(() => loadConfig({ overrides: { broker: { tokenBackoff: { baseMs: 5000, maxMs: 1000 } } } }))
      .toThrow(/broker\.tokenBackoff\.maxMs: maxMs must be at least baseMs/)
    expect(loadConfig({}).broker).toMatchObject({ maxPacketBytes: 1024 * 1024, connectTimeoutMs: 10_000, maxSubscriptionsPerClient: 100 })
  })

  it('bounds what crosses a task sandbox, with defaults and errors naming the key', () => {
    expect(loadConfig().tasks).toMatchObject({ maxBridgeBytes: 1024 * 1024, timerCpuMsPerSecond: 100, drainTimeoutMs: 5000 })
    expect(loadConfig({ overrides: { tasks: { maxBridgeBytes: 65_536 } } }).tasks.maxBridgeBytes).toBe(65_536)
    expect(() => loadConfig({ overrides: { tasks: { maxBridgeBytes: 10 } } })).toThrow(/tasks\.maxBridgeBytes: .*>=1024/)
    expect(() => loadConfig({ overrides: { tasks: { timerCpuMsPerSecond: 0 } } })).toThrow(/tasks\.timerCpuMsPerSecond: .*>=1/)
    expect(() => loadConfig({ overrides: { tasks: { drainTimeoutMs: 120_000 } } })).toThrow(/tasks\.drainTimeoutMs: .*<=60000/)
  })

  it('refuses unknown keys, naming them', () => {
    expect(() => loadConfig({ overrides: { shadows: {} } })).toThrow(/\(root\): unknown key\(s\) 'shadows'/)
    expect(() => loadConfig({ overrides: { listeners: { mqtt: { prot: 1 } } } })).toThrow(/listeners\.mqtt: unknown key\(s\) 'prot'/)
  })

  it('reports a file that is not JSON with its path', () => {
    const path = file('c.json', '{ "dataDir": ')
    expect(() => loadConfig({ file: path })).toThrow(new RegExp(`config file ${path} is not valid JSON`))
    expect(() => loadConfig({ file: join(tmp.dir, 'missing.json') })).toThrow(/cannot read config file/)
  })

  it('refuses policies referenced by name that are not defined', () => {
    expect(() => loadConfig({ overrides: { auth: { anonymousPolicies: ['nope'] } } })).toThrow(/auth\.anonymousPolicies: policy 'nope' is not defined/)
  })

  it('returns a frozen object', () => {
    const c = loadConfig()
    expect(Object.isFrozen(c.listeners.mqtt)).toBe(true)
  })

  it('bounds shadow requests by default and names a request cap below the state limit', () => {
    expect(loadConfig().shadow).toMatchObject({ maxRequestBytes: null, maxMetadataBytes: null, maxNamedShadowsPerThing: 100 })
    expect(loadConfig({ overrides: { shadow: { maxRequestBytes: 65536, maxNamedShadowsPerThing: 10 } } }).shadow).toMatchObject({ maxRequestBytes: 65536, maxNamedShadowsPerThing: 10 })
    expect(() => loadConfig({ overrides: { shadow: { maxRequestBytes: 4096 } } })).toThrow(/shadow\.maxRequestBytes: must be at least shadow\.maxStateBytes/)
    expect(() => loadConfig({ overrides: { shadow: { maxNamedShadowsPerThing: -1 } } })).toThrow(/shadow\.maxNamedShadowsPerThing: .*>=0/)
    expect(() => loadConfig({ overrides: { shadow: { maxMetadataBytes: 'lots' } } })).toThrow(/shadow\.maxMetadataBytes: .*expected number/)
  })

  it("allows anonymous loopback clients on 'auto' only when every MQTT listener is on loopback", () => {
    expect(anonymousLoopbackAllowed(loadConfig())).toBe(true)
    expect(anonymousLoopbackAllowed(loadConfig({ overrides: { listeners: { mqtts: { host: '0.0.0.0' } } } }))).toBe(false)
    expect(anonymousLoopbackAllowed(loadConfig({ overrides: { auth: { allowAnonymousLoopback: false } } }))).toBe(false)
  })
})
