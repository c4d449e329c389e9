/**
 * The device SDK with real credentials issued by the CLI (`devices add`): mutual TLS with files or
 * PEM text, a token over TCP and WebSocket, refusals, and discovery through the local API. The
 * coordinator allows no anonymous clients here.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDevice, discover, endpointUrl, type DeviceClient, type DeviceOptions } from '../../devices/sdk/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { addDevice, type IssuedDevice } from '../helpers/devices-cli.js'
import { tempDir } from '../helpers/tmp.js'

const TLS = 'sdk-tls-1'
const TOK = 'sdk-token-1'

describe('device SDK with issued credentials (mutual TLS, tokens, discovery)', () => {
  const tmp = tempDir('edge-coord-sdk-auth-')
  let run: RunningCoordinator
  let tls: IssuedDevice
  let token: string
  const open: DeviceClient[] = []

  const mqttsUrl = (): string => `mqtts://127.0.0.1:${run.endpoints.mqtts.port}`

  async function connected(options: DeviceOptions): Promise<DeviceClient> {
    const device = await connectDevice(options)
    open.push(device)
    return device
  }

  beforeAll(async () => {
    tls = await addDevice(tmp.dir, TLS)
    const tok = await addDevice(tmp.dir, TOK, ['--token', '--no-cert'])
    if (tok.token === undefined) throw new Error('devices add --token printed no token')
    token = tok.token
    run = await startCoordinator({ auth: { allowAnonymousLoopback: false }, shadow: { maxRequestsPerSecondPerThing: 0 } }, { dataDir: tmp.dir })
  })
  afterAll(async () => {
    for (const d of open.splice(0)) await d.close()
    await run?.stop()
    tmp.remove()
  })

  it('connects over mutual TLS with the certificate, key and CA files `devices add` wrote', async () => {
    const device = await connected({ url: mqttsUrl(), thingName: TLS, cert: tls.certPath, key: tls.keyPath, ca: tls.caPath })
    expect((await device.shadow().update({ state: { reported: { secure: true } } })).version).toBe(1)
    await device.close()
  })

  it('accepts PEM text as well as file paths', async () => {
    const pem = (path: string): string => readFileSync(path, 'utf8')
    const device = await connected({ url: mqttsUrl(), thingName: TLS, cert: pem(tls.certPath), key: pem(tls.keyPath), ca: pem(tls.caPath) })
    expect((await device.shadow().get()).state.reported).toEqual({ secure: true })
    await device.close()
  })

  it("refuses the first connection when the thing name is not the certificate's", async () => {
    await expect(connectDevice({ url: mqttsUrl(), thingName: 'sdk-impostor', cert: tls.certPath, key: tls.keyPath, ca: tls.caPath, reconnect: false }))
      .rejects.toThrow(/Not authorized/)
  })

  it('logs in with a token over TCP and over WebSocket', async () => {
    const tcp = await connected({ url: run.mqttUrl, thingName: TOK, token })
    expect((await tcp.shadow().update({ state: { reported: { via: 'tcp' } } })).version).toBe(1)
    await tcp.close()
    const ws = await connected({ url: `ws://127.0.0.1:${run.endpoints.ws.port}/mqtt`, thingName: TOK, token })
    expect((await ws.shadow().update({ state: { reported: { via: 'ws' } } })).version).toBe(2)
    await ws.close()
  })

  it('is refused with a wrong token or with no credentials', async () => {
    await expect(connectDevice({ url: run.mqttUrl, thingName: TOK, token: 'not-the-token' })).rejects.toThrow(/Bad username or password/)
    await expect(connectDevice({ url: run.mqttUrl, thingName: TOK })).rejects.toThrow(/Bad username or password/)
  })

  it('discovers the endpoints and CA, then connects over mutual TLS with them', async (ctx) => {
    const probe = await fetch(`${run.httpUrl}/v1/discovery/${TLS}`)
    ctx.skip(probe.status === 404, 'the coordinator has no GET /v1/discovery/{thing} route yet')
    const found = await discover(run.httpUrl, TLS)
    expect(found.thingName).toBe(TLS)
    expect(found.caPem).toContain('BEGIN CERTIFICATE')
    expect(found.endpoints).toContainEqual({ protocol: 'ws', host: '127.0.0.1', port: run.endpoints.ws.port, path: '/mqtt' })
    const mqtts = found.endpoints.find((e) => e.protocol === 'mqtts')
    if (mqtts === undefined || found.caPem === null) throw new Error('discovery named no mqtts endpoint or CA')
    expect(endpointUrl(mqtts)).toBe(mqttsUrl())
    const device = await connected({ url: endpointUrl(mqtts), thingName: TLS, cert: tls.certPath, key: tls.keyPath, ca: found.caPem })
    expect((await device.shadow().get()).version).toBe(1)
  })

  it('rejects discovery of an invalid thing name before asking', async () => {
    await expect(discover(run.httpUrl, 'bad/name')).rejects.toThrow(RangeError)
  })
})
