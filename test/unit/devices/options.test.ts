import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { endpointUrl } from '../../../devices/sdk/index.js'
import { resolveDeviceOptions } from '../../../devices/sdk/options.js'
import { tempDir } from '../../helpers/tmp.js'

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'

describe('resolveDeviceOptions', () => {
  const tmp = tempDir('edge-coord-sdk-options-')
  afterAll(() => tmp.remove())

  it('should use the thing name as client id, a persistent session and MQTT 3.1.1 by default', () => {
    const s = resolveDeviceOptions({ url: 'mqtt://127.0.0.1:1883', thingName: 'plug-1' })
    expect(s.mqtt).toMatchObject({ clientId: 'plug-1', clean: false, protocolVersion: 4, keepalive: 60, resubscribe: false, reconnectPeriod: 1000 })
    expect(s.mqtt.username).toBeUndefined()
    expect(s.requestTimeoutMs).toBe(10_000)
  })

  it('should send a token as the password with the thing name as username', () => {
    const s = resolveDeviceOptions({ url: 'ws://127.0.0.1:8083/mqtt', thingName: 'plug-1', token: 's3cret' })
    expect(s.mqtt).toMatchObject({ username: 'plug-1', password: 's3cret' })
  })

  it('should take PEM text as is and read anything else as a file path', () => {
    const file = join(tmp.dir, 'ca.pem')
    writeFileSync(file, PEM)
    const s = resolveDeviceOptions({ url: 'mqtts://h:8883', thingName: 'a', cert: PEM, key: PEM, ca: file })
    expect([s.mqtt.cert, s.mqtt.ca]).toEqual([PEM, PEM])
    expect(() => resolveDeviceOptions({ url: 'mqtts://h:8883', thingName: 'a', ca: join(tmp.dir, 'nope.pem') })).toThrow(/ca: cannot read PEM file/)
  })

  it('should turn reconnecting off with reconnect: false', () => {
    expect(resolveDeviceOptions({ url: 'mqtt://h', thingName: 'a', reconnect: false })).toMatchObject({ backoff: null, mqtt: { reconnectPeriod: 0 } })
  })

  it.each([
    [{ url: 'http://h', thingName: 'a' }, /url must start with/],
    [{ url: 'not a url', thingName: 'a' }, /url must be an absolute URL/],
    [{ url: 'mqtt://h', thingName: 'bad/name' }, /thingName/],
    [{ url: 'mqtt://h', thingName: 'a', cert: PEM }, /cert and key/],
    [{ url: 'mqtt://h', thingName: 'a', requestTimeoutMs: 0 }, /requestTimeoutMs/],
    [{ url: 'mqtt://h', thingName: 'a', keepalive: -1 }, /keepalive/],
  ])('should refuse %o', (options, message) => {
    expect(() => resolveDeviceOptions(options)).toThrow(message)
  })
})

describe('endpointUrl', () => {
  it('should build connect URLs, bracketing IPv6 and adding the WebSocket path', () => {
    expect(endpointUrl({ protocol: 'mqtts', host: '10.0.0.2', port: 8883 })).toBe('mqtts://10.0.0.2:8883')
    expect(endpointUrl({ protocol: 'ws', host: 'gw.local', port: 8083, path: '/mqtt' })).toBe('ws://gw.local:8083/mqtt')
    expect(endpointUrl({ protocol: 'mqtt', host: '::1', port: 1883 })).toBe('mqtt://[::1]:1883')
  })
})
