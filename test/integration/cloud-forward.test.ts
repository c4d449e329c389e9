import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JoinDocument } from '../../coordinator/protocol/index.js'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

/** Messages the cloud shim's own bus sees under cloud/gw-1/#, in arrival order. */
async function cloudInbox(shim: RunningCloudShim): Promise<string[]> {
  const seen: string[] = []
  await shim.shim.bus.subscribe('cloud/gw-1/#', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
  return seen
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

describe('coordinator to cloud shim: forwarding through the durable outbox', () => {
  const tmp = tempDir()
  const cloudDir = join(tmp.dir, 'cloud')
  let cloud: RunningCloudShim
  let gateway: RunningCoordinator

  beforeAll(async () => {
    cloud = await startCloudShim({}, { dataDir: cloudDir })
    const res = await fetch(`${cloud.httpUrl}/v1/coordinators`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'gw-1' }) })
    expect(res.status).toBe(201)
    const joinFile = join(tmp.dir, 'gw-1.join.json')
    writeFileSync(joinFile, JSON.stringify((await res.json()) as JoinDocument))
    gateway = await startCoordinator({
      cloud: { joinFile, forward: ['gateway/#'] },
      policies: [{ name: 'gateway-publisher', statements: [{ effect: 'allow', actions: ['publish'], resources: ['gateway/#'] }] }],
      auth: { anonymousPolicies: ['gateway-publisher'] },
    })
    await until(() => gateway.coordinator.cloud?.link.state === 'connected', 15_000)
  })
  afterAll(async () => {
    await gateway.stop()
    await cloud.stop()
    tmp.remove()
  })

  it('forwards local messages upstream under cloud/{name}/', async () => {
    const seen = await cloudInbox(cloud)
    const local = await connect(gateway.mqttUrl, { clientId: 'sensor-a' })
    for (let i = 0; i < 5; i++) await local.publishAsync('gateway/telemetry', `m${i}`, { qos: 1 })
    await until(() => seen.length >= 5, 10_000)
    expect(seen.slice(0, 5)).toEqual([0, 1, 2, 3, 4].map((i) => `cloud/gw-1/gateway/telemetry m${i}`))
    await local.endAsync()
  })

  it('keeps messages while the cloud shim is down and delivers all of them, in order, when it is back', async () => {
    const port = cloud.endpoints.mqtts?.port
    await cloud.stop({ keepData: true })
    await until(() => gateway.coordinator.cloud?.link.state !== 'connected', 10_000)
    const local = await connect(gateway.mqttUrl, { clientId: 'sensor-b' })
    for (let i = 0; i < 300; i++) await local.publishAsync('gateway/buffered', `b${i}`, { qos: 1 })
    await local.endAsync()
    expect(gateway.coordinator.cloud?.outbox.stats().queued).toBe(300)

    // The same mqtts port, for the coordinator to come back to; the rest stay off the default ports.
    cloud = await startCloudShim({ listeners: { mqtt: { port: 0 }, mqtts: { port }, http: { port: 0 } } }, { dataDir: cloudDir })
    const seen = await cloudInbox(cloud)
    await until(() => new Set(seen).size >= 300, 60_000)
    const firstArrivals = [...new Set(seen)]
    expect(firstArrivals).toEqual(Array.from({ length: 300 }, (_, i) => `cloud/gw-1/gateway/buffered b${i}`))
    // PUBACKs are recorded in batches, so the outbox empties a moment after the last arrival.
    await until(() => gateway.coordinator.cloud?.outbox.stats().queued === 0, 5_000)
  })
})
