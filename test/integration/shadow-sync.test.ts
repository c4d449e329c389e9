import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { collect, connect, shadowRequest } from '../helpers/mqtt.js'
import { deleteShadow, provision, stateAt, until, untilState, updateShadow, versionAt } from '../helpers/sync.js'
import { tempDir } from '../helpers/tmp.js'

const SYNC_MS = 15_000

describe('shadow sync between a joined coordinator and the cloud shim', () => {
  const tmp = tempDir()
  let cloud: RunningCloudShim
  let gw: RunningCoordinator
  let lamp: MqttClient

  beforeAll(async () => {
    cloud = await startCloudShim({}, { dataDir: join(tmp.dir, 'cloud') })
    const joinFile = await provision(cloud, 'gw-1', tmp.dir, ['lamp-1'])
    gw = await startCoordinator({ cloud: { joinFile, sync: { shadows: [{ thing: 'lamp-1', classic: true, named: ['config'] }] } } })
    await until(() => gw.coordinator.cloud?.link.state === 'connected', SYNC_MS, 'link up')
    lamp = await connect(gw.mqttUrl, { clientId: 'lamp-1' })
  })
  afterAll(async () => {
    await lamp.endAsync()
    await gw.stop()
    await cloud.stop()
    tmp.remove()
  })

  it('confirms the synced devices the operator registered under the coordinator', async () => {
    await until(() => gw.coordinator.cloud?.link.state === 'connected', SYNC_MS, 'link up')
    const res = await fetch(`${cloud.httpUrl}/v1/things/lamp-1`)
    expect(await res.json()).toMatchObject({ kind: 'device', coordinator: 'gw-1' })
  })

  it("sends a local device's reported change to the cloud shadow", async () => {
    const reply = await shadowRequest(lamp, '$aws/things/lamp-1/shadow', 'update', JSON.stringify({ state: { reported: { on: false, level: 3 } } }))
    expect(reply.status).toBe('accepted')
    await untilState(cloud, 'lamp-1', { reported: { on: false, level: 3 } }, SYNC_MS)
  })

  it("applies an operator's desired change locally, and the device gets the delta", async () => {
    const deltas = await collect(lamp, '$aws/things/lamp-1/shadow/update/delta', 1, SYNC_MS)
    expect((await updateShadow(cloud, 'lamp-1', { desired: { on: true } })).status).toBe(200)
    const [delta] = await deltas.done
    expect(delta?.body['state']).toEqual({ on: true })
    await untilState(gw, 'lamp-1', { desired: { on: true }, reported: { on: false, level: 3 } }, SYNC_MS)
  })

  it('syncs named shadows and the coordinator\'s own classic shadow', async () => {
    await updateShadow(gw, 'lamp-1', { reported: { schedule: [7, 22] } }, 'config')
    await untilState(cloud, 'lamp-1', { reported: { schedule: [7, 22] } }, SYNC_MS, 'config')
    await updateShadow(cloud, 'gw-1', { desired: { deployment: { id: 'd-1' } } })
    await untilState(gw, 'gw-1', { desired: { deployment: { id: 'd-1' } } }, SYNC_MS)
  })

  it('does not echo: once synced, neither side changes again', async () => {
    await gw.coordinator.sync?.idle()
    const before = [await versionAt(gw, 'lamp-1'), await versionAt(cloud, 'lamp-1')]
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await gw.coordinator.sync?.idle()
    expect([await versionAt(gw, 'lamp-1'), await versionAt(cloud, 'lamp-1')]).toEqual(before)
  })

  it('deletes on the other side what one side deleted', async () => {
    expect((await deleteShadow(gw, 'lamp-1', 'config')).status).toBe(200)
    await untilState(cloud, 'lamp-1', null, SYNC_MS, 'config')
    expect((await deleteShadow(cloud, 'gw-1')).status).toBe(200)
    await untilState(gw, 'gw-1', null, SYNC_MS)
  })

  it('recreates a deleted shadow on both sides when it is written again, its versions going on upwards', async () => {
    await updateShadow(cloud, 'lamp-1', { desired: { brightness: 80 } }, 'config')
    await untilState(gw, 'lamp-1', { desired: { brightness: 80 } }, SYNC_MS, 'config')
    // The deleted local document had version 1: the recreated one continues above it.
    expect(await versionAt(gw, 'lamp-1', 'config')).toBeGreaterThan(1)
    expect(await stateAt(cloud, 'lamp-1', 'config')).toEqual({ desired: { brightness: 80 } })
  })
})
