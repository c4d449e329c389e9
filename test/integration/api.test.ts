import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { collect, connect } from '../helpers/mqtt.js'
import { isAuthorized } from '../../coordinator/api/server.js'

describe('local HTTP API', () => {
  let run: RunningCoordinator
  let device: MqttClient

  beforeAll(async () => {
    run = await startCoordinator()
    device = await connect(run.mqttUrl, { clientId: 'plug-1' })
  })
  afterAll(async () => {
    await device.endAsync()
    await run.stop()
  })

  const call = async (method: string, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${run.httpUrl}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body }) })
    return { status: res.status, json: (await res.json()) as Record<string, unknown> }
  }

  it('reports health and readiness', async () => {
    expect(await call('GET', '/healthz')).toEqual({ status: 200, json: { status: 'ok' } })
    expect(await call('GET', '/readyz')).toEqual({ status: 200, json: { ready: true } })
  })

  it('updates a shadow and the device receives the delta over MQTT', async () => {
    const delta = await collect(device, '$aws/things/plug-1/shadow/update/delta', 1)
    const r = await call('POST', '/things/plug-1/shadow', JSON.stringify({ state: { desired: { relay: 'on' } }, clientToken: 'op-1' }))
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ state: { desired: { relay: 'on' } }, version: 1, clientToken: 'op-1' })
    expect((await delta.done)[0]?.body).toMatchObject({ state: { relay: 'on' }, version: 1 })
  })

  it('reads a shadow with its delta, and 404s with the AWS message for a missing one', async () => {
    const r = await call('GET', '/things/plug-1/shadow')
    expect(r).toMatchObject({ status: 200, json: { state: { desired: { relay: 'on' }, delta: { relay: 'on' } }, version: 1 } })
    expect(await call('GET', '/things/ghost/shadow')).toMatchObject({ status: 404, json: { code: 404, message: "No shadow exists with name: 'ghost'" } })
  })

  it('answers protocol errors with their HTTP status and AWS body', async () => {
    expect(await call('POST', '/things/plug-1/shadow', '{"state":')).toMatchObject({ status: 400, json: { code: 400, message: 'Invalid JSON' } })
    expect(await call('POST', '/things/plug-1/shadow', '{"state":{"reported":{}},"version":99}')).toMatchObject({ status: 409, json: { message: 'Version conflict' } })
    expect(await call('GET', '/things/bad%20name/shadow')).toMatchObject({ status: 400 })
  })

  it('handles named shadows and lists them page by page', async () => {
    for (const name of ['a', 'b', 'c']) {
      expect((await call('POST', `/things/plug-1/shadow?name=${name}`, '{"state":{"reported":{"x":1}}}')).status).toBe(200)
    }
    const first = await call('GET', '/api/things/shadow/ListNamedShadowsForThing/plug-1?pageSize=2')
    expect(first.json['results']).toEqual(['a', 'b'])
    const second = await call('GET', `/api/things/shadow/ListNamedShadowsForThing/plug-1?pageSize=2&nextToken=${String(first.json['nextToken'])}`)
    expect(second.json['results']).toEqual(['c'])
    expect(second.json['nextToken']).toBeUndefined()
    expect((await call('GET', '/api/things/shadow/ListNamedShadowsForThing/plug-1?pageSize=500')).json['message']).toMatch(/pageSize must be an integer from 1 to 100/)
  })

  it('deletes a shadow and publishes delete/accepted to devices', async () => {
    const accepted = await collect(device, '$aws/things/plug-1/shadow/name/a/delete/accepted', 1)
    expect(await call('DELETE', '/things/plug-1/shadow?name=a')).toMatchObject({ status: 200, json: { version: 1 } })
    expect((await accepted.done)[0]?.body).toMatchObject({ version: 1 })
  })

  it('tells a device where the coordinator listens and which CA to trust', async () => {
    const r = await call('GET', '/v1/discovery/plug-1')
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ thingName: 'plug-1', caPem: expect.stringContaining('BEGIN CERTIFICATE') })
    expect(r.json['endpoints']).toEqual([
      { protocol: 'mqtt', host: '127.0.0.1', port: run.endpoints.mqtt.port },
      { protocol: 'mqtts', host: '127.0.0.1', port: run.endpoints.mqtts.port },
      { protocol: 'ws', host: '127.0.0.1', port: run.endpoints.ws.port, path: '/mqtt' },
    ])
  })

  it('refuses unknown routes, wrong methods and oversized bodies clearly', async () => {
    expect((await call('GET', '/nope')).status).toBe(404)
    expect(await call('PUT', '/things/plug-1/shadow', '{}')).toMatchObject({ status: 405, json: { message: 'method PUT not allowed on /things/plug-1/shadow' } })
    expect((await call('POST', '/things/plug-1/shadow', 'x'.repeat(6 * 1024 * 1024))).status).toBe(413)
    expect((await call('POST', '/things/plug-1/shadow', JSON.stringify({ state: { reported: { big: 'x'.repeat(9000) } } }))).status).toBe(413)
  })
})

describe('API caller authorization', () => {
  const token = 'secret-token'
  it('lets loopback callers in without a token', () => {
    expect(isAuthorized('127.0.0.1', undefined, token)).toBe(true)
    expect(isAuthorized('::ffff:127.0.0.1', undefined, token)).toBe(true)
    expect(isAuthorized('::1', undefined, token)).toBe(true)
  })
  it('requires the bearer token from any other address', () => {
    expect(isAuthorized('192.0.2.7', undefined, token)).toBe(false)
    expect(isAuthorized('192.0.2.7', 'Bearer wrong-token!', token)).toBe(false)
    expect(isAuthorized('192.0.2.7', 'Basic secret-token', token)).toBe(false)
    expect(isAuthorized('192.0.2.7', `Bearer ${token}`, token)).toBe(true)
  })
})
