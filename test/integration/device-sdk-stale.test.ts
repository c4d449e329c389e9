/**
 * Stale-version filtering over a real socket. The coordinator never publishes out of order on
 * purpose, so here the test plays the shadow service on a bare aedes broker and sends deltas with
 * the versions and in the order it wants, as a reordering network or a redelivered queue could.
 */
import { createServer, type Server } from 'node:net'
import { Aedes } from 'aedes'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDevice, type DeltaDocument, type DeviceClient, type ShadowChange } from '../../devices/sdk/index.js'
import { until } from './device-sdk-helpers.js'

const THING = 'sdk-stale-1'
const PREFIX = `$aws/things/${THING}/shadow`

describe('device SDK: stale deltas (discardStale)', () => {
  let broker: Aedes
  let server: Server
  let device: DeviceClient

  /** Publishes as the shadow service would, at QoS 1. */
  const reply = (topic: string, body: Record<string, unknown>): Promise<void> =>
    new Promise((resolve, reject) => broker.publish({ cmd: 'publish', topic: `${PREFIX}/${topic}`, payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())))

  beforeAll(async () => {
    broker = await Aedes.createBroker()
    // The fake shadow service answers every get with version 5.
    broker.subscribe(`${PREFIX}/get`, (packet, done) => {
      const { clientToken } = JSON.parse(packet.payload.toString()) as { clientToken: string }
      void reply('get/accepted', { state: {}, metadata: {}, version: 5, timestamp: 1, clientToken }).then(done)
    }, () => {})
    server = createServer(broker.handle)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    device = await connectDevice({ url: `mqtt://127.0.0.1:${port}`, thingName: THING })
  })
  afterAll(async () => {
    await device?.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('ignores deltas and foreign updates older than the last version seen', async () => {
    const shadow = device.shadow()
    const deltas: DeltaDocument[] = []
    const changes: ShadowChange[] = []
    shadow.onDelta((d) => void deltas.push(d))
    shadow.onChange((c) => void changes.push(c))
    expect((await shadow.get()).version).toBe(5)

    const delta = (version: number): Promise<void> => reply('update/delta', { state: { step: version }, metadata: {}, version, timestamp: 1 })
    await delta(4)
    await delta(6)
    await reply('update/accepted', { state: { desired: { step: 3 } }, metadata: {}, version: 3, timestamp: 1, clientToken: 'someone-else' })
    await delta(5)
    await delta(7)

    await until('the newest delta', () => (deltas.some((d) => d.version === 7) ? true : undefined))
    expect(deltas.map((d) => d.version)).toEqual([6, 7])
    expect(changes).toEqual([])
    expect(shadow.stats()).toMatchObject({ deltas: 2, staleDiscarded: 3 })
    expect(shadow.version).toBe(7)
  })
})
