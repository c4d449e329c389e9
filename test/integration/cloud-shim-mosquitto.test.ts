/**
 * The cloud shim attached to an existing broker: `edge-cloud start --broker URL` against a real
 * mosquitto, with MQTT clients talking to mosquitto only.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import type { JoinDocument } from '../../cloud-shim/identity/index.js'
import { CLOUD_BIN, runBin, startCloudDaemon, type CloudDaemon } from '../helpers/cloud-shim.js'
import { collect, connect, shadowRequest } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

const MOSQUITTO = '/usr/sbin/mosquitto'

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Retries until mosquitto accepts connections (it logs nothing machine-readable when ready). */
async function waitForBroker(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const probe = await connect(url, { clientId: 'probe' })
      await probe.endAsync()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

describe.skipIf(!existsSync(MOSQUITTO))('cloud shim on an existing broker (mosquitto, --broker)', () => {
  const tmp = tempDir('edge-cloud-mosquitto-')
  let mosquitto: ChildProcess
  let daemon: CloudDaemon
  let brokerUrl: string
  const open: MqttClient[] = []

  beforeAll(async () => {
    const port = await freePort()
    brokerUrl = `mqtt://127.0.0.1:${port}`
    const conf = join(tmp.dir, 'mosquitto.conf')
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
    mosquitto = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' })
    await waitForBroker(brokerUrl)
    daemon = await startCloudDaemon(['--data-dir', join(tmp.dir, 'cloud'), '--http-port', '0', '--broker', brokerUrl])
  })

  afterAll(async () => {
    for (const c of open.splice(0)) c.end(true)
    await daemon?.stop()
    mosquitto?.kill('SIGTERM')
    tmp.remove()
  })

  it('should run no MQTT listener of its own, only HTTP, and name the broker it is attached to', () => {
    expect(daemon.ready).toMatchObject({ broker: `${brokerUrl}`, endpoints: { http: { host: '127.0.0.1' } } })
    expect(Object.keys(daemon.ready['endpoints'] as object)).toEqual(['http'])
  })

  it('should answer a shadow update published to mosquitto with accepted and delta from the cloud shim', async () => {
    const device = await connect(brokerUrl, { clientId: 'sensor-7' })
    open.push(device)
    const delta = await collect(device, '$aws/things/sensor-7/shadow/update/delta', 1)
    const r = await shadowRequest(device, '$aws/things/sensor-7/shadow', 'update', JSON.stringify({ state: { desired: { rate: 5 } }, clientToken: 'm-1' }))
    expect(r).toMatchObject({ status: 'accepted', body: { state: { desired: { rate: 5 } }, version: 1, clientToken: 'm-1' } })
    expect((await delta.done)[0]?.body).toMatchObject({ state: { rate: 5 }, version: 1 })
    const http = (daemon.ready['endpoints'] as { http: { port: number } }).http
    const doc = (await (await fetch(`http://127.0.0.1:${http.port}/things/sensor-7/shadow`)).json()) as Record<string, unknown>
    expect(doc).toMatchObject({ state: { desired: { rate: 5 } }, version: 1 })
  })

  it('should take a registration through mosquitto from a coordinator provisioned while the daemon runs', async () => {
    const r = await runBin(CLOUD_BIN, ['coordinators', 'add', 'hub-m', '--data-dir', join(tmp.dir, 'cloud'), '--tag', 'gpio', '--out', tmp.dir])
    expect(r.code).toBe(0)
    const join_ = JSON.parse(readFileSync(join(tmp.dir, 'hub-m.join.json'), 'utf8')) as JoinDocument
    expect(join_.mqttUrl).toBe(`${brokerUrl}`)
    const hub = await connect(brokerUrl, { clientId: 'hub-m' })
    open.push(hub)
    const reply = await collect(hub, 'cloud/hub-m/register/+', 1)
    await hub.publishAsync('cloud/hub-m/register', JSON.stringify({ attributes: { arch: 'arm64' } }), { qos: 1 })
    const [answer] = await reply.done
    expect(answer).toMatchObject({
      topic: 'cloud/hub-m/register/accepted',
      body: { thing: { name: 'hub-m', attributes: {}, tags: ['gpio'], reported: { attributes: { arch: 'arm64' }, tags: [] } } },
    })
  })
})
