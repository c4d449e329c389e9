/**
 * The cloud shim as coordinators see it: a join file made by the real CLI (`edge-cloud
 * coordinators add`) connects over mutual TLS; the registry decides which shadows a coordinator
 * may use; coordinators register their own attributes over MQTT and group membership follows;
 * cloud shadows answer over MQTT and HTTP with the coordinator's shadow engine.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { IClientOptions, MqttClient } from 'mqtt'
import type { JoinDocument } from '../../cloud-shim/identity/index.js'
import { CLOUD_BIN, runBin, startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { collect, connect, shadowRequest } from '../helpers/mqtt.js'

const shadow = (thing: string): string => `$aws/things/${thing}/shadow`
const tlsOptions = (j: JoinDocument): IClientOptions => ({ clientId: j.name, key: j.keyPem, cert: j.certPem, ca: j.caPem, rejectUnauthorized: true })
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('cloud shim: coordinator provisioning, identity and cloud shadows', () => {
  const out = mkdtempSync(join(tmpdir(), 'edge-cloud-join-'))
  let run: RunningCloudShim
  let hubA: JoinDocument
  let hubB: JoinDocument
  const open: MqttClient[] = []

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${run.httpUrl}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  async function connected(j: JoinDocument, url = j.mqttUrl, extra: IClientOptions = {}): Promise<MqttClient> {
    const client = await connect(url, { ...tlsOptions(j), ...extra })
    open.push(client)
    return client
  }

  beforeAll(async () => {
    run = await startCloudShim({ auth: { allowAnonymousLoopback: false }, shadow: { maxRequestsPerSecondPerThing: 0 } })
    const r = await runBin(CLOUD_BIN, ['coordinators', 'add', 'hub-a', '--data-dir', run.dataDir, '--attr', 'site=north', '--tag', 'gpio', '--out', out])
    if (r.code !== 0) throw new Error(`coordinators add failed: ${r.stderr}${r.stdout}`)
    hubA = JSON.parse(readFileSync(join(out, 'hub-a.join.json'), 'utf8')) as JoinDocument
    const b = await api('POST', '/v1/coordinators', { name: 'hub-b', attributes: { site: 'south' } })
    hubB = b.body as unknown as JoinDocument
    expect((await api('PUT', '/v1/things/lamp-a', { kind: 'device', coordinator: 'hub-a' })).status).toBe(201)
    expect((await api('PUT', '/v1/things/lamp-b', { kind: 'device', coordinator: 'hub-b' })).status).toBe(201)
  })

  afterAll(async () => {
    for (const c of open.splice(0)) c.end(true)
    await run?.stop()
    rmSync(out, { recursive: true, force: true })
  })

  it('should write one owner-only join file naming the running mqtts and http endpoints', () => {
    expect(statSync(join(out, 'hub-a.join.json')).mode & 0o777).toBe(0o600)
    expect(hubA).toMatchObject({ name: 'hub-a', mqttUrl: `mqtts://127.0.0.1:${run.endpoints.mqtts?.port}`, httpUrl: run.httpUrl })
    expect(hubA.caPem).toContain('BEGIN CERTIFICATE')
    expect(hubA.keyPem).toContain('PRIVATE KEY')
    expect(run.shim.registry.getThing('hub-a')).toMatchObject({ kind: 'coordinator', attributes: { site: 'north' }, tags: ['gpio'] })
  })

  it('should let the coordinator connect over mutual TLS with its join file, and refuse it under another name', async () => {
    const a = await connected(hubA)
    expect(a.connected).toBe(true)
    await expect(connect(hubA.mqttUrl, { ...tlsOptions(hubA), clientId: 'hub-b' })).rejects.toThrow(/Not authorized/i)
    await expect(connect(hubA.mqttUrl, { clientId: 'hub-a', ca: hubA.caPem })).rejects.toThrow(/Bad username or password/i)
  })

  it("should let a coordinator use its own shadows and its devices' shadows, but not another coordinator's", async () => {
    const a = await connected(hubA)
    const own = await shadowRequest(a, shadow('hub-a'), 'update', JSON.stringify({ state: { reported: { up: true } } }))
    expect(own).toMatchObject({ status: 'accepted', body: { version: 1 } })
    const device = await shadowRequest(a, `${shadow('lamp-a')}/name/cfg`, 'update', JSON.stringify({ state: { reported: { on: false } } }))
    expect(device).toMatchObject({ status: 'accepted', body: { version: 1 } })
    await expect(a.subscribeAsync(`${shadow('lamp-b')}/update/accepted`, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(a.subscribeAsync(`${shadow('hub-b')}/#`, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(a.subscribeAsync('cloud/hub-b/#', { qos: 1 })).rejects.toThrow(/Subscribe error/)
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()))
    a.publish(`${shadow('hub-b')}/update`, JSON.stringify({ state: { desired: { hijacked: true } } }), { qos: 1 })
    await closed
    expect((await api('GET', '/things/hub-b/shadow')).status).toBe(404)
  })

  it("should stop delivering a device's shadow traffic to a coordinator the moment the device moves away", async () => {
    const a = await connected(hubA)
    const before = await collect(a, `${shadow('lamp-a')}/update/delta`, 1)
    await api('POST', '/things/lamp-a/shadow', { state: { desired: { on: true } } })
    expect((await before.done)[0]?.body).toMatchObject({ state: { on: true } })
    const seen: string[] = []
    a.on('message', (topic) => seen.push(topic))
    expect((await api('PATCH', '/v1/things/lamp-a', { coordinator: 'hub-b' })).status).toBe(200)
    await api('POST', '/things/lamp-a/shadow', { state: { desired: { on: false } } })
    await sleep(300)
    expect(seen).toEqual([])
    await api('PATCH', '/v1/things/lamp-a', { coordinator: 'hub-a' })
  })

  it("should keep what a coordinator registers over MQTT in its reported section, where only queries on reported fields see it", async () => {
    const operatorGroup = await api('POST', '/v1/groups', { name: 'north-cams', query: 'attributes.site = "north" AND tags HAS camera AND attributes.memoryMb >= 512' })
    expect(operatorGroup.body).toMatchObject({ kind: 'dynamic', members: [] })
    const reportedGroup = await api('POST', '/v1/groups', { name: 'north-big', query: 'attributes.site = "north" AND reported.tags HAS camera AND reported.attributes.memoryMb >= 512' })
    expect(reportedGroup.body).toMatchObject({ kind: 'dynamic', members: [] })
    const events: Array<[string, string[], string[]]> = []
    const off = run.shim.registry.on('groupMembershipChanged', (g, added, removed) => events.push([g, added, removed]))
    const a = await connected(hubA)
    const reply = await collect(a, 'cloud/hub-a/register/+', 1)
    const registration = { attributes: { memoryMb: '2048' }, addTags: ['camera'], devices: [{ name: 'lamp-a', attributes: { room: 'hall' } }], clientToken: 'r-1' }
    await a.publishAsync('cloud/hub-a/register', JSON.stringify(registration), { qos: 1 })
    const [answer] = await reply.done
    off()
    expect(answer?.topic).toBe('cloud/hub-a/register/accepted')
    expect(answer?.body).toMatchObject({
      devices: ['lamp-a'], refused: [], clientToken: 'r-1',
      thing: { attributes: { site: 'north' }, tags: ['gpio'], reported: { attributes: { memoryMb: '2048' }, tags: ['camera'] } },
    })
    expect(events).toEqual([['north-big', ['hub-a'], []]])
    expect((await api('GET', '/v1/groups/north-cams')).body['members']).toEqual([])
    expect((await api('GET', '/v1/groups/north-big')).body['members']).toEqual(['hub-a'])
    expect(run.shim.registry.getThing('lamp-a')).toMatchObject({ kind: 'device', coordinator: 'hub-a', attributes: {}, reported: { attributes: { room: 'hall' } } })
  })

  it('should accept a token coordinator over TCP, and disconnect and refuse it once removed', async () => {
    const c = (await api('POST', '/v1/coordinators', { name: 'hub-c', token: true })).body as unknown as JoinDocument
    expect(c.token).toBeTypeOf('string')
    const mqttUrl = `mqtt://127.0.0.1:${run.endpoints.mqtt?.port}`
    const client = await connect(mqttUrl, { clientId: 'hub-c', username: 'hub-c', password: c.token ?? '' })
    open.push(client)
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    expect((await api('DELETE', '/v1/things/hub-c')).status).toBe(200)
    await closed
    await expect(connect(mqttUrl, { clientId: 'hub-c', username: 'hub-c', password: c.token ?? '' })).rejects.toThrow(/Bad username or password/i)
  })

  it('should serve cloud shadows over MQTT (accepted, delta) and over the AWS REST paths', async () => {
    const b = await connected(hubB)
    const delta = await collect(b, `${shadow('hub-b')}/update/delta`, 1)
    const put = await api('POST', '/things/hub-b/shadow', { state: { desired: { deployment: 'd-1' } }, clientToken: 'op-1' })
    expect(put).toMatchObject({ status: 200, body: { state: { desired: { deployment: 'd-1' } }, version: 1, clientToken: 'op-1' } })
    expect((await delta.done)[0]?.body).toMatchObject({ state: { deployment: 'd-1' }, version: 1 })
    const reported = await shadowRequest(b, shadow('hub-b'), 'update', JSON.stringify({ state: { reported: { deployment: 'd-1' } }, version: 1 }))
    expect(reported).toMatchObject({ status: 'accepted', body: { version: 2 } })
    const stale = await shadowRequest(b, shadow('hub-b'), 'update', JSON.stringify({ state: { reported: { x: 1 } }, version: 1 }))
    expect(stale).toMatchObject({ status: 'rejected', body: { code: 409, message: 'Version conflict' } })
    const got = await api('GET', '/things/hub-b/shadow')
    expect(got.body).toMatchObject({ state: { desired: { deployment: 'd-1' }, reported: { deployment: 'd-1' } }, version: 2 })
    expect(got.body['state']).not.toHaveProperty('delta')
    expect((await api('POST', '/things/hub-b/shadow?name=deploy', { state: { desired: { id: 'd-2' } } })).status).toBe(200)
    expect((await api('GET', '/api/things/shadow/ListNamedShadowsForThing/hub-b')).body).toMatchObject({ results: ['deploy'] })
  })
})
