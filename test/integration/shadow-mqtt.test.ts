import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { collect, connect, shadowRequest } from '../helpers/mqtt.js'

const classic = (thing: string): string => `$aws/things/${thing}/shadow`
const named = (thing: string, name: string): string => `$aws/things/${thing}/shadow/name/${name}`

describe('shadow service over MQTT (AWS IoT Device Shadow protocol)', () => {
  let run: RunningCoordinator
  let lamp: MqttClient

  beforeAll(async () => {
    run = await startCoordinator({ shadow: { maxRequestsPerSecondPerThing: 0 } })
    lamp = await connect(run.mqttUrl, { clientId: 'lamp-1' })
  })
  afterAll(async () => {
    await lamp.endAsync()
    await run.stop()
  })

  it('creates a shadow at version 1 and echoes the clientToken', async () => {
    const r = await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { on: false } }, clientToken: 't-1' }))
    expect(r.status).toBe('accepted')
    expect(r.body).toMatchObject({ state: { reported: { on: false } }, version: 1, clientToken: 't-1' })
    expect(r.body['metadata']).toMatchObject({ reported: { on: { timestamp: expect.any(Number) } } })
  })

  it('answers get with state, delta, metadata, version and the clientToken', async () => {
    await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { desired: { on: true } } }))
    const r = await shadowRequest(lamp, classic('lamp-1'), 'get', JSON.stringify({ clientToken: 'g-1' }))
    expect(r.status).toBe('accepted')
    expect(r.body).toMatchObject({ state: { desired: { on: true }, reported: { on: false }, delta: { on: true } }, version: 2, clientToken: 'g-1' })
  })

  it('publishes delta while desired and reported differ, and none once reported catches up', async () => {
    const deltas: Array<Record<string, unknown>> = []
    await lamp.subscribeAsync(`${classic('lamp-1')}/update/delta`, { qos: 1 })
    const onDelta = (topic: string, msg: Buffer): void => {
      if (topic.endsWith('/update/delta')) deltas.push(JSON.parse(msg.toString()) as Record<string, unknown>)
    }
    lamp.on('message', onDelta)
    const docs = await collect(lamp, `${classic('lamp-1')}/update/documents`, 2)
    await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { desired: { level: 7 } } }))
    await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { on: true, level: 7 } } }))
    const documents = await docs.done
    lamp.off('message', onDelta)
    expect(deltas).toHaveLength(1)
    expect(deltas[0]).toMatchObject({ state: { on: true, level: 7 }, version: 3 })
    expect(documents[1]?.body).toMatchObject({ previous: { version: 3 }, current: { version: 4, state: { reported: { on: true, level: 7 } } } })
    const r = await shadowRequest(lamp, classic('lamp-1'), 'get')
    expect((r.body['state'] as Record<string, unknown>)['delta']).toBeUndefined()
  })

  it('rejects a stale version with 409 and accepts the current one', async () => {
    const current = (await shadowRequest(lamp, classic('lamp-1'), 'get')).body['version'] as number
    const stale = await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { x: 1 } }, version: current - 1, clientToken: 'c' }))
    expect(stale).toMatchObject({ status: 'rejected', body: { code: 409, message: 'Version conflict', clientToken: 'c' } })
    const ok = await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { x: 1 } }, version: current }))
    expect(ok.body['version']).toBe(current + 1)
  })

  it.each([
    ['invalid JSON', 400, 'Invalid JSON', '{"state":'],
    ['missing state', 400, 'Missing required node: state', '{"clientToken":"a"}'],
    ['state not an object', 400, 'State node must be an object', '{"state":3}'],
    ['desired not an object', 400, 'Desired node must be an object', '{"state":{"desired":[1]}}'],
    ['reported not an object', 400, 'Reported node must be an object', '{"state":{"reported":"x"}}'],
    ['unknown node in state', 400, "State contains an invalid node: 'delta'", '{"state":{"delta":{}}}'],
    ['bad version', 400, 'Invalid version', '{"state":{"reported":{}},"version":-1}'],
    ['bad clientToken', 400, 'Invalid clientToken', JSON.stringify({ state: { reported: {} }, clientToken: 'x'.repeat(65) })],
    ['too deep', 400, 'JSON contains too many levels of nesting; maximum is 6', JSON.stringify({ state: { reported: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } } })],
    ['too large', 413, 'The payload exceeds the maximum size allowed', JSON.stringify({ state: { reported: { blob: 'x'.repeat(9000) } } })],
  ])('rejects %s with %i %s', async (_name, code, message, payload) => {
    const r = await shadowRequest(lamp, classic('lamp-1'), 'update', payload)
    expect(r.status).toBe('rejected')
    expect(r.body).toMatchObject({ code, message })
  })

  it('accepts nesting exactly at the depth limit', async () => {
    const r = await shadowRequest(lamp, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { a: { b: { c: { d: { e: { f: 1 } } } } } } } }))
    expect(r.status).toBe('accepted')
  })

  it('rejects a payload that is not UTF-8 with 415', async () => {
    const r = await shadowRequest(lamp, classic('lamp-1'), 'update', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))
    expect(r.body).toMatchObject({ code: 415, message: 'Unsupported documented encoding; supported encoding is UTF-8' })
  })

  it('keeps named shadows apart from the classic shadow', async () => {
    const up = await shadowRequest(lamp, named('lamp-1', 'config'), 'update', JSON.stringify({ state: { desired: { mode: 'eco' } } }))
    expect(up.body).toMatchObject({ version: 1 })
    const g = await shadowRequest(lamp, named('lamp-1', 'config'), 'get')
    expect(g.body['state']).toEqual({ desired: { mode: 'eco' }, delta: { mode: 'eco' } })
    const missing = await shadowRequest(lamp, named('lamp-1', 'nope'), 'get', '{"clientToken":"m"}')
    expect(missing.body).toMatchObject({ code: 404, message: "No shadow exists with name: 'nope'", clientToken: 'm' })
  })

  it('continues versions after delete and re-create, and 404s in between', async () => {
    const ref = named('lamp-1', 'tmp')
    await shadowRequest(lamp, ref, 'update', JSON.stringify({ state: { reported: { a: 1 } } }))
    await shadowRequest(lamp, ref, 'update', JSON.stringify({ state: { reported: { a: 2 } } }))
    const del = await shadowRequest(lamp, ref, 'delete', JSON.stringify({ clientToken: 'd' }))
    expect(del.body).toMatchObject({ version: 2, clientToken: 'd' })
    expect((await shadowRequest(lamp, ref, 'get')).body).toMatchObject({ code: 404 })
    expect((await shadowRequest(lamp, ref, 'delete')).body).toMatchObject({ code: 404 })
    const again = await shadowRequest(lamp, ref, 'update', JSON.stringify({ state: { reported: { a: 3 } } }))
    expect(again.body).toMatchObject({ version: 3 })
  })

  it('publishes update/documents with the whole previous and current documents, metadata included', async () => {
    const ref = named('lamp-1', 'docs')
    const docs = await collect(lamp, `${ref}/update/documents`, 2)
    await shadowRequest(lamp, ref, 'update', JSON.stringify({ state: { desired: { t: 21 } } }))
    const r = await shadowRequest(lamp, ref, 'update', JSON.stringify({ state: { reported: { t: 19 } }, clientToken: 'doc-1' }))
    const [first, got] = await docs.done
    expect(first?.body).toMatchObject({ previous: null, current: { version: 1 } })
    const ts = r.body['timestamp'] as number
    const t0 = ((got?.body['previous'] as Record<string, unknown>)['metadata'] as { desired: { t: { timestamp: number } } }).desired.t.timestamp
    expect(got?.body).toStrictEqual({
      previous: { state: { desired: { t: 21 } }, metadata: { desired: { t: { timestamp: t0 } } }, version: 1 },
      current: { state: { desired: { t: 21 }, reported: { t: 19 } }, metadata: { desired: { t: { timestamp: t0 } }, reported: { t: { timestamp: ts } } }, version: 2 },
      timestamp: ts,
      clientToken: 'doc-1',
    })
  })

  it('refuses a client publishing to a reply topic', async () => {
    const spy = await connect(run.mqttUrl, { clientId: 'lamp-2' })
    const closed = new Promise<void>((resolve) => spy.once('close', () => resolve()))
    spy.publish(`${classic('lamp-2')}/update/accepted`, '{}', { qos: 1 })
    await closed
    spy.end(true)
  })

  it("does not let a device read another device's shadow", async () => {
    const other = await connect(run.mqttUrl, { clientId: 'lamp-2' })
    // The broker answers SUBACK 0x80, which MQTT.js surfaces as a rejected subscribe.
    await expect(other.subscribeAsync(`${classic('lamp-1')}/get/accepted`, { qos: 1 })).rejects.toThrow(/Subscribe error/)
    await expect(other.subscribeAsync(`${classic('lamp-2')}/get/accepted`, { qos: 1 })).resolves.toBeDefined()
    await other.endAsync()
  })
})
