import { describe, expect, it } from 'vitest'
import { credentialsFor, formatStatus, parseTokenFile, RateMeter, swarmNames, type SwarmSample } from '../../../devices/swarm/index.js'

describe('token file', () => {
  it('should read "NAME TOKEN" lines, skipping comments and blank lines', () => {
    const tokens = parseTokenFile('# tokens\nsim-1 aaa\n\n  sim-2\tbbb  # kitchen\r\n')
    expect([...tokens]).toEqual([['sim-1', 'aaa'], ['sim-2', 'bbb']])
  })

  it('should name the line that is malformed', () => {
    expect(() => parseTokenFile('sim-1 aaa\nsim-2\n')).toThrow('token file line 2: expected "THING_NAME TOKEN", got 1 field(s)')
  })
})

describe('credentialsFor', () => {
  it('should give each device its token, or its certificate files from the cert dir', () => {
    const creds = credentialsFor(['a', 'b'], { tokens: new Map([['a', 't1'], ['b', 't2']]), certDir: '/certs' })
    expect(creds('b')).toEqual({ token: 't2', cert: '/certs/b/cert.pem', key: '/certs/b/key.pem', ca: '/certs/b/ca.pem' })
    expect(credentialsFor(['a'], {})('a')).toEqual({})
  })

  it('should refuse up front when the token file misses devices', () => {
    const names = swarmNames('sim-', 9)
    expect(() => credentialsFor(names, { tokens: new Map([['sim-1', 'x']]) })).toThrow('token file has no token for sim-2, sim-3, sim-4, sim-5, sim-6 and 3 more')
  })
})

describe('status line', () => {
  const sample = (updates: number, telemetry: number): SwarmSample => ({ connected: 98, total: 100, updates, telemetry, errors: 2 })

  it('should show connections, per-second rates since the previous line, and errors', () => {
    const meter = new RateMeter(sample(0, 0), 0)
    expect(meter.line(sample(50, 400), 5000)).toBe('connected 98/100  updates/s 10.0  telemetry/s 80.0  errors 2')
    expect(meter.line(sample(60, 600), 7000)).toBe('connected 98/100  updates/s 5.0  telemetry/s 100.0  errors 2')
    expect(formatStatus(sample(0, 0), 0, 0)).toBe('connected 98/100  updates/s 0.0  telemetry/s 0.0  errors 2')
  })

  it('should number swarm devices from 1 with the prefix', () => {
    expect(swarmNames('sim-', 3)).toEqual(['sim-1', 'sim-2', 'sim-3'])
  })
})
