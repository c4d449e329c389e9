import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { connect, shadowRequest } from '../helpers/mqtt.js'
import {
  deleteShadow, provision, restartCloudShim, startUnreachableCloudShim, until, untilState, updateShadow, versionAt,
} from '../helpers/sync.js'
import { tempDir } from '../helpers/tmp.js'

const SYNC_MS = 15_000
/** The link backs off up to a few seconds per attempt while the cloud shim is away. */
const RECONNECT_MS = 45_000
const SHADOWS = ['', 'spare', 'extra', 'old'] as const

/** Every `update/documents` version a side publishes, per shadow, in arrival order. */
type Versions = Map<string, number[]>

function recordVersion(into: Versions, topic: string, payload: Buffer): void {
  const shadow = /\/shadow\/name\/([^/]+)\//.exec(topic)?.[1] ?? ''
  const version = (JSON.parse(payload.toString()) as { current: { version: number } }).current.version
  into.set(shadow, [...(into.get(shadow) ?? []), version])
}

const strictlyIncreasing = (vs: number[]): boolean => vs.every((v, i) => i === 0 || v > (vs[i - 1] as number))

describe('shadow sync across a link cut: both sides change, then converge by the documented rule', () => {
  const tmp = tempDir()
  const cloudDir = join(tmp.dir, 'cloud')
  const localVersions: Versions = new Map()
  const cloudVersions: Versions = new Map()
  let cloud: RunningCloudShim
  let gw: RunningCoordinator
  let device: MqttClient

  const watchCloud = async (shim: RunningCloudShim): Promise<void> => {
    await shim.shim.bus.subscribe('$aws/things/hvac-1/shadow/#', (topic, payload) => {
      if (topic.endsWith('/update/documents')) recordVersion(cloudVersions, topic, payload)
    })
  }

  beforeAll(async () => {
    cloud = await startCloudShim({}, { dataDir: cloudDir })
    await watchCloud(cloud)
    const joinFile = await provision(cloud, 'gw-1', tmp.dir, ['hvac-1'])
    gw = await startCoordinator({ cloud: { joinFile, sync: { own: false, shadows: [{ thing: 'hvac-1', named: ['spare', 'extra', 'old'] }] } } })
    await until(() => gw.coordinator.cloud?.link.state === 'connected', SYNC_MS, 'link up')
    device = await connect(gw.mqttUrl, { clientId: 'hvac-1' })
    await device.subscribeAsync('$aws/things/hvac-1/shadow/#', { qos: 1 })
    device.on('message', (topic, payload) => {
      if (topic.endsWith('/update/documents')) recordVersion(localVersions, topic, payload)
    })
  })
  afterAll(async () => {
    await device.endAsync()
    await gw.stop()
    await cloud.stop()
    tmp.remove()
  })

  it('starts from shadows synced on both sides', async () => {
    await shadowRequest(device, '$aws/things/hvac-1/shadow', 'update', JSON.stringify({ state: { reported: { temp: 19, fan: 'auto' } } }))
    await updateShadow(cloud, 'hvac-1', { desired: { temp: 20, fan: 'auto' } })
    for (const s of ['spare', 'extra', 'old']) await updateShadow(gw, 'hvac-1', { reported: { x: 1 } }, s)
    const synced = { desired: { temp: 20, fan: 'auto' }, reported: { temp: 19, fan: 'auto' } }
    await untilState(gw, 'hvac-1', synced, SYNC_MS)
    await untilState(cloud, 'hvac-1', synced, SYNC_MS)
    for (const s of ['spare', 'extra', 'old']) await untilState(cloud, 'hvac-1', { reported: { x: 1 } }, SYNC_MS, s)
  })

  it('converges after the link comes back: desired from the cloud, reported from the coordinator, deletes by the rule', async () => {
    await gw.coordinator.sync?.idle()
    const before = await versionsNow()
    const port = cloud.endpoints.mqtts?.port as number
    await cloud.stop({ keepData: true })
    await until(() => gw.coordinator.cloud?.link.state !== 'connected', SYNC_MS, 'link down')

    // The coordinator's side, while the link is down.
    await shadowRequest(device, '$aws/things/hvac-1/shadow', 'update', JSON.stringify({ state: { reported: { temp: 23, humidity: 40 } } }))
    await updateShadow(gw, 'hvac-1', { desired: { fan: 'low', mode: 'eco' } })
    await deleteShadow(gw, 'hvac-1', 'spare')
    await updateShadow(gw, 'hvac-1', { reported: { x: 5 } }, 'extra')

    // The cloud's side, changed by an operator while the coordinator cannot reach it.
    const away = await startUnreachableCloudShim(cloudDir)
    await watchCloud(away)
    await updateShadow(away, 'hvac-1', { desired: { fan: 'high', temp: 22 }, reported: { temp: 30, battery: 'low' } })
    await updateShadow(away, 'hvac-1', { reported: { x: 2 } }, 'spare')
    await deleteShadow(away, 'hvac-1', 'extra')
    await deleteShadow(away, 'hvac-1', 'old')
    await away.stop({ keepData: true })

    cloud = await restartCloudShim(cloudDir, port)
    await watchCloud(cloud)
    const expected = {
      desired: { temp: 22, fan: 'high', mode: 'eco' },
      reported: { temp: 23, fan: 'auto', humidity: 40, battery: 'low' },
    }
    await untilState(cloud, 'hvac-1', expected, RECONNECT_MS)
    await untilState(gw, 'hvac-1', expected, SYNC_MS)
    // Deleted on one side and changed on the other: the change wins, the shadow is recreated.
    for (const side of [gw, cloud]) await untilState(side, 'hvac-1', { reported: { x: 2 } }, SYNC_MS, 'spare')
    for (const side of [gw, cloud]) await untilState(side, 'hvac-1', { reported: { x: 5 } }, SYNC_MS, 'extra')
    // Deleted on one side, untouched on the other: deleted on both.
    await untilState(gw, 'hvac-1', null, SYNC_MS, 'old')

    await gw.coordinator.sync?.idle()
    const after = await versionsNow()
    expect(after.local.hvac).toBeGreaterThan(before.local.hvac as number)
    expect(after.cloud.hvac).toBeGreaterThan(before.cloud.hvac as number)
  }, 90_000)

  it('only ever moved versions up, on both sides, through all of it', () => {
    for (const s of SHADOWS) {
      expect(strictlyIncreasing(localVersions.get(s) ?? []), `local ${s}: ${JSON.stringify(localVersions.get(s))}`).toBe(true)
      expect(strictlyIncreasing(cloudVersions.get(s) ?? []), `cloud ${s}: ${JSON.stringify(cloudVersions.get(s))}`).toBe(true)
    }
    expect(localVersions.get('')?.length).toBeGreaterThan(2)
    expect(cloudVersions.get('')?.length).toBeGreaterThan(2)
  })

  async function versionsNow(): Promise<{ local: { hvac: number | null }; cloud: { hvac: number | null } }> {
    return { local: { hvac: await versionAt(gw, 'hvac-1') }, cloud: { hvac: await versionAt(cloud, 'hvac-1') } }
  }
})
