/**
 * Device authentication and authorization as an independent MQTT client (MQTT.js) sees it:
 * certificates and tokens issued by the real CLI (`edge-coordinator devices add/remove`), mutual
 * TLS, token login over TCP, TLS and WebSocket, and the default per-thing policy.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { IClientOptions, MqttClient } from 'mqtt'
import { createCa, issueClientCert } from '../../coordinator/pki/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { addDevice, removeDevice, type IssuedDevice } from '../helpers/devices-cli.js'
import { connect, shadowRequest } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

const A = 'mtls-a'
const B = 'mtls-b'
const GONE = 'mtls-gone'
const TOK = 'mtls-token'

const shadow = (thing: string): string => `$aws/things/${thing}/shadow`

interface TlsCredentials {
  key: string
  cert: string
  ca: string
}

const readCreds = (d: IssuedDevice): TlsCredentials => ({
  key: readFileSync(d.keyPath, 'utf8'),
  cert: readFileSync(d.certPath, 'utf8'),
  ca: readFileSync(d.caPath, 'utf8'),
})

describe('device authentication and authorization (mutual TLS, tokens, WebSocket)', () => {
  const tmp = tempDir('edge-coord-mtls-')
  let run: RunningCoordinator
  let credsA: TlsCredentials
  let credsB: TlsCredentials
  let credsGone: TlsCredentials
  let token: string
  const open: MqttClient[] = []

  const mqttsUrl = (): string => `mqtts://127.0.0.1:${run.endpoints.mqtts.port}`
  const wsUrl = (): string => `ws://127.0.0.1:${run.endpoints.ws.port}/mqtt`

  /** Connects and remembers the client so afterAll closes it even when an assertion fails. */
  async function connected(url: string, opts: IClientOptions): Promise<MqttClient> {
    const client = await connect(url, opts)
    open.push(client)
    return client
  }

  beforeAll(async () => {
    // One at a time: the first `devices add` creates the CA the others sign with.
    credsA = readCreds(await addDevice(tmp.dir, A))
    credsB = readCreds(await addDevice(tmp.dir, B))
    // Read into memory: `devices remove` deletes the files along with the registration.
    credsGone = readCreds(await addDevice(tmp.dir, GONE))
    const tok = await addDevice(tmp.dir, TOK, ['--token', '--no-cert'])
    if (tok.token === undefined) throw new Error('devices add --token printed no token')
    token = tok.token
    // No anonymous fallback anywhere: every connection below must prove who it is.
    run = await startCoordinator({ auth: { allowAnonymousLoopback: false }, shadow: { maxRequestsPerSecondPerThing: 0 } }, { dataDir: tmp.dir })
  })

  afterAll(async () => {
    for (const c of open.splice(0)) c.end(true)
    await run?.stop()
    tmp.remove()
  })

  it('accepts the issued certificate with client id = thing name, verifying the server by IP SAN', async () => {
    const client = await connected(mqttsUrl(), { clientId: A, ...credsA, rejectUnauthorized: true })
    const r = await shadowRequest(client, shadow(A), 'update', JSON.stringify({ state: { reported: { ok: true } }, clientToken: 'a-1' }))
    expect(r).toMatchObject({ status: 'accepted', body: { version: 1, clientToken: 'a-1' } })
    await client.endAsync()
  })

  it('verifies the server certificate by DNS SAN (localhost) too', async () => {
    const client = await connected(mqttsUrl(), { clientId: A, ...credsA, servername: 'localhost' })
    expect(client.connected).toBe(true)
    await client.endAsync()
  })

  it('refuses a certificate from a foreign CA even with the right thing name', async () => {
    const foreignCa = await createCa({ commonName: 'Somebody Else CA' })
    const forged = await issueClientCert(foreignCa, { thingName: A })
    await expect(connect(mqttsUrl(), { clientId: A, key: forged.keyPem, cert: forged.certPem, ca: credsA.ca })).rejects.toThrow(/Not authorized/i)
  })

  it("refuses a device's certificate used with another device's client id", async () => {
    await expect(connect(mqttsUrl(), { clientId: B, ...credsA })).rejects.toThrow(/Not authorized/i)
    await expect(connect(mqttsUrl(), { clientId: 'nobody', ...credsA })).rejects.toThrow(/Not authorized/i)
  })

  it('refuses a device removed with `devices remove` on its next connection', async () => {
    const before = await connected(mqttsUrl(), { clientId: GONE, ...credsGone })
    await before.endAsync()
    await removeDevice(tmp.dir, GONE)
    await expect(connect(mqttsUrl(), { clientId: GONE, ...credsGone })).rejects.toThrow(/Not authorized/i)
  })

  it('accepts a token device over TCP with client id = name and password = token, and refuses a wrong token', async () => {
    const client = await connected(run.mqttUrl, { clientId: TOK, username: TOK, password: token })
    const r = await shadowRequest(client, shadow(TOK), 'update', JSON.stringify({ state: { reported: { via: 'tcp' } } }))
    expect(r).toMatchObject({ status: 'accepted', body: { version: 1 } })
    await client.endAsync()
    await expect(connect(run.mqttUrl, { clientId: TOK, username: TOK, password: `${token}x` })).rejects.toThrow(/Bad username or password/i)
    await expect(connect(run.mqttUrl, { clientId: TOK, username: TOK, password: 'wrong' })).rejects.toThrow(/Bad username or password/i)
    // The token belongs to its device: it does not log in as another one.
    await expect(connect(run.mqttUrl, { clientId: A, username: A, password: token })).rejects.toThrow(/Bad username or password/i)
  })

  it('accepts a token over TLS without a client certificate', async () => {
    const client = await connected(mqttsUrl(), { clientId: TOK, username: TOK, password: token, ca: credsA.ca })
    expect(client.connected).toBe(true)
    await client.endAsync()
  })

  it('refuses anonymous clients when allowAnonymousLoopback is false (TCP, TLS without a certificate, WebSocket)', async () => {
    await expect(connect(run.mqttUrl, { clientId: 'anon-1' })).rejects.toThrow(/Bad username or password/i)
    await expect(connect(mqttsUrl(), { clientId: 'anon-1', ca: credsA.ca })).rejects.toThrow(/Bad username or password/i)
    await expect(connect(wsUrl(), { clientId: 'anon-1' })).rejects.toThrow(/Bad username or password/i)
  })

  it('lets anonymous loopback clients in by default (the contrast to the test above)', async () => {
    const dev = await startCoordinator()
    try {
      const client = await connect(dev.mqttUrl, { clientId: 'anon-1' })
      await client.endAsync()
    } finally {
      await dev.stop()
    }
  })

  it('accepts a token device over MQTT on WebSocket (ws://…/mqtt) and refuses a wrong token there', async () => {
    const client = await connected(wsUrl(), { clientId: TOK, username: TOK, password: token })
    const r = await shadowRequest(client, shadow(TOK), 'get', JSON.stringify({ clientToken: 'ws-1' }))
    expect(r).toMatchObject({ status: 'accepted', body: { state: { reported: { via: 'tcp' } }, version: 1, clientToken: 'ws-1' } })
    await client.endAsync()
    await expect(connect(wsUrl(), { clientId: TOK, username: TOK, password: 'wrong' })).rejects.toThrow(/Bad username or password/i)
  })

  it("closes the connection of a device that publishes to another device's shadow update topic", async () => {
    const a = await connected(mqttsUrl(), { clientId: A, ...credsA })
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()))
    a.publish(`${shadow(B)}/update`, JSON.stringify({ state: { desired: { hijacked: true } } }), { qos: 1 })
    await closed
    expect(a.connected).toBe(false)
    // Nothing reached B's shadow.
    const res = await fetch(`${run.httpUrl}/things/${B}/shadow`)
    expect(res.status).toBe(404)
    a.end(true)
  })

  it("refuses a device subscribing to another device's shadow replies (SUBACK failure)", async () => {
    const a = await connected(mqttsUrl(), { clientId: A, ...credsA })
    await expect(a.subscribeAsync(`${shadow(B)}/update/accepted`, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(a.subscribeAsync(`$aws/things/+/shadow/update/accepted`, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(a.subscribeAsync(`${shadow(A)}/update/accepted`, { qos: 1 })).resolves.toBeDefined()
    // B's own updates still work and are not seen by A.
    const b = await connected(mqttsUrl(), { clientId: B, ...credsB })
    const seenByA: string[] = []
    a.on('message', (topic) => seenByA.push(topic))
    const r = await shadowRequest(b, shadow(B), 'update', JSON.stringify({ state: { reported: { mine: true } } }))
    expect(r.status).toBe('accepted')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(seenByA).toEqual([])
    await a.endAsync()
    await b.endAsync()
  })
})
