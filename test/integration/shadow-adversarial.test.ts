/**
 * Hostile shadow requests against a real coordinator over real MQTT (and its HTTP shadow routes):
 * each attack must be refused with AWS's error shape, before the expensive work it aims at, while
 * a well-behaved device keeps being answered. Attack classes:
 *   - a payload over shadow.maxRequestBytes (413 before it is decoded: invalid JSON still gets 413)
 *   - a 5 MB update of 400,000 keys (413), also with the request cap raised above it (413 before
 *     validation: a state that is both too large and invalid still gets 413)
 *   - oversized get and delete payloads
 *   - more named shadows than shadow.maxNamedShadowsPerThing (400), and create/delete cycles that
 *     would grow the table with tombstones
 *   - an array update whose metadata would pass shadow.maxMetadataBytes (413, nothing stored)
 * The cloud shim runs the same ShadowService and is held to the same bounds.
 */
import Database from 'better-sqlite3'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { databaseFile } from '../../coordinator/kernel/coordinator.js'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { connect, shadowRequest } from '../helpers/mqtt.js'

const classic = (thing: string): string => `$aws/things/${thing}/shadow`
const named = (thing: string, name: string): string => `$aws/things/${thing}/shadow/name/${name}`
const TOO_LARGE = { code: 413, message: 'The payload exceeds the maximum size allowed' }

/** About 5 MB: `{"state":{"reported":{"k000000":1,…}}}` with `keys` keys, then `tail` inside the top object. */
function manyKeys(keys: number, tail = ''): string {
  const members = Array.from({ length: keys }, (_, i) => `"k${String(i).padStart(6, '0')}":1`)
  return `{"state":{"reported":{${members.join(',')}}}${tail}}`
}

describe('shadow requests are bounded before any expensive work (real MQTT)', () => {
  let run: RunningCoordinator
  let attacker: MqttClient
  let victim: MqttClient

  beforeAll(async () => {
    // The packet limit above the attack's size, so that the shadow's own bounds are what refuse it.
    run = await startCoordinator({ broker: { maxPacketBytes: 16 * 1024 * 1024 }, shadow: { maxRequestsPerSecondPerThing: 0 } })
    attacker = await connect(run.mqttUrl, { clientId: 'mallory' })
    victim = await connect(run.mqttUrl, { clientId: 'lamp-1' })
  })
  afterAll(async () => {
    await Promise.all([attacker.endAsync(), victim.endAsync()])
    await run.stop()
  })

  it('answers 413, not 400, to a payload over maxRequestBytes that is not even JSON: the size is checked before parsing', async () => {
    const r = await shadowRequest(attacker, classic('mallory'), 'update', `{"state":${'['.repeat(40_000)}`)
    expect(r).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    expect(r.body['clientToken']).toBeUndefined()
  })

  it('answers 413 to a 5 MB update of 400,000 keys, stores nothing, and keeps answering another device', async () => {
    const payload = manyKeys(400_000)
    expect(payload.length).toBeGreaterThan(4_500_000)
    const [attack, served] = await Promise.all([
      shadowRequest(attacker, classic('mallory'), 'update', payload),
      shadowRequest(victim, classic('lamp-1'), 'update', JSON.stringify({ state: { reported: { on: true } }, clientToken: 'v-1' })),
    ])
    expect(attack).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    // Refused before validation too: with an invalid version it is still 413, not 400.
    const invalid = await shadowRequest(attacker, classic('mallory'), 'update', manyKeys(400_000, ',"version":-1'))
    expect(invalid).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    expect(served).toMatchObject({ status: 'accepted', body: { version: 1, clientToken: 'v-1' } })
    expect((await shadowRequest(attacker, classic('mallory'), 'get')).body).toMatchObject({ code: 404 })
  })

  it('answers 413 to oversized get and delete payloads, before parsing them', async () => {
    const junk = `{"clientToken":"${'x'.repeat(40_000)}`
    expect((await shadowRequest(victim, classic('lamp-1'), 'get', junk))).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    expect((await shadowRequest(victim, classic('lamp-1'), 'delete', junk))).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    expect((await shadowRequest(victim, classic('lamp-1'), 'get')).body).toMatchObject({ state: { reported: { on: true } }, version: 1 })
  })

  it('refuses an array update whose metadata would pass the limit, and stores nothing of it', async () => {
    // 8 KB of state, but ~100 KB of per-element timestamps in metadata.
    const list = Array.from({ length: 4000 }, () => 1)
    const r = await shadowRequest(attacker, named('mallory', 'list'), 'update', JSON.stringify({ state: { reported: { list } }, clientToken: 'arr' }))
    expect(r).toMatchObject({ status: 'rejected', body: { ...TOO_LARGE, clientToken: 'arr' } })
    expect((await shadowRequest(attacker, named('mallory', 'list'), 'get')).body).toMatchObject({ code: 404 })
  })

  it('still accepts an object-shaped document at the state limit (its metadata fits)', async () => {
    const reported = Object.fromEntries(Array.from({ length: 1100 }, (_, i) => [i.toString(36).padStart(2, '0'), 1]))
    const body = JSON.stringify({ state: { reported } })
    expect(body.length).toBeGreaterThan(7000)
    const r = await shadowRequest(victim, named('lamp-1', 'wide'), 'update', body)
    expect(r).toMatchObject({ status: 'accepted', body: { version: 1 } })
  })

  it('refuses the same attacks on the HTTP shadow routes with the AWS body', async () => {
    const post = async (thing: string, body: string): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`${run.httpUrl}/things/${thing}/shadow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      return { status: res.status, body: await res.json() }
    }
    expect(await post('mallory', `{"state":${'['.repeat(40_000)}`)).toEqual({ status: 413, body: TOO_LARGE })
    expect(await post('mallory', manyKeys(400_000))).toEqual({ status: 413, body: TOO_LARGE })
    expect((await post('lamp-1', JSON.stringify({ state: { reported: { on: false } } }))).status).toBe(200)
  })
})

describe('shadow bounds hold when the request cap is raised above the attack (e.g. a larger packet limit)', () => {
  let run: RunningCoordinator
  let attacker: MqttClient

  beforeAll(async () => {
    // The packet limit above the attack's size, so that the shadow's own bounds are what refuse it.
    run = await startCoordinator({ broker: { maxPacketBytes: 32 * 1024 * 1024 }, shadow: { maxRequestsPerSecondPerThing: 0, maxRequestBytes: 16 * 1024 * 1024 } })
    attacker = await connect(run.mqttUrl, { clientId: 'mallory' })
  })
  afterAll(async () => {
    await attacker.endAsync()
    await run.stop()
  })

  it('answers 413 to a 400,000-key update before validating it: a state both too large and invalid gets 413, not 400', async () => {
    const r = await shadowRequest(attacker, classic('mallory'), 'update', manyKeys(400_000, ',"version":-1,"clientToken":"big"'))
    expect(r).toMatchObject({ status: 'rejected', body: { ...TOO_LARGE, clientToken: 'big' } })
    const nulls = await shadowRequest(attacker, classic('mallory'), 'update', manyKeys(400_000).replace('"k000000":1', '"k000000":[null]'))
    expect(nulls).toMatchObject({ status: 'rejected', body: TOO_LARGE })
    expect((await shadowRequest(attacker, classic('mallory'), 'get')).body).toMatchObject({ code: 404 })
  })
})

describe('named shadows per thing are capped (real MQTT)', () => {
  let run: RunningCoordinator
  let device: MqttClient
  let other: MqttClient
  const update = (client: MqttClient, thing: string, name: string, token = name) =>
    shadowRequest(client, named(thing, name), 'update', JSON.stringify({ state: { reported: { n: name } }, clientToken: token }))

  beforeAll(async () => {
    run = await startCoordinator({ shadow: { maxRequestsPerSecondPerThing: 0, maxNamedShadowsPerThing: 3 } })
    device = await connect(run.mqttUrl, { clientId: 'sensor-1' })
    other = await connect(run.mqttUrl, { clientId: 'sensor-2' })
  })
  afterAll(async () => {
    await Promise.all([device.endAsync(), other.endAsync()])
    await run.stop()
  })

  it('refuses the named shadow past the cap with a 400, and nothing else', async () => {
    for (const name of ['a', 'b', 'c']) expect((await update(device, 'sensor-1', name)).status).toBe('accepted')
    const refused = await update(device, 'sensor-1', 'd', 'tok-d')
    expect(refused).toMatchObject({ status: 'rejected', body: { code: 400, message: 'Too many named shadows for this thing; maximum is 3', clientToken: 'tok-d' } })
    expect((await shadowRequest(device, named('sensor-1', 'd'), 'get')).body).toMatchObject({ code: 404 })
    // Existing named shadows, the classic shadow and other things are not affected.
    expect((await update(device, 'sensor-1', 'a')).body).toMatchObject({ version: 2 })
    expect((await shadowRequest(device, classic('sensor-1'), 'update', JSON.stringify({ state: { reported: { up: 1 } } }))).status).toBe('accepted')
    expect((await update(other, 'sensor-2', 'd')).status).toBe('accepted')
    // Deleting one makes room.
    expect((await shadowRequest(device, named('sensor-1', 'b'), 'delete')).status).toBe('accepted')
    expect((await update(device, 'sensor-1', 'd')).status).toBe('accepted')
  })

  it('keeps at most the cap of tombstones, however many names are created and deleted', async () => {
    for (let i = 0; i < 8; i++) {
      expect((await update(other, 'sensor-2', `tmp-${i}`)).status).toBe('accepted')
      expect((await shadowRequest(other, named('sensor-2', `tmp-${i}`), 'delete')).status).toBe('accepted')
    }
    const db = new Database(databaseFile(run.dataDir), { readonly: true, fileMustExist: true })
    try {
      const rows = db.prepare(`SELECT count(*) AS n FROM shadows WHERE thing = 'sensor-2' AND body IS NULL`).get() as { n: number }
      expect(rows.n).toBe(3)
    } finally {
      db.close()
    }
  })
})

describe('the cloud shim serves its shadows with the same bounds', () => {
  let cloud: RunningCloudShim

  beforeAll(async () => {
    cloud = await startCloudShim({ shadow: { maxRequestsPerSecondPerThing: 0, maxNamedShadowsPerThing: 1 } })
  })
  afterAll(async () => {
    await cloud.stop()
  })

  const post = async (path: string, body: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${cloud.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    return { status: res.status, body: await res.json() }
  }

  it('answers 413 to an oversized request and 400 past the named shadow cap, and counts both', async () => {
    expect(await post('/things/hub-1/shadow', `{"state":${'['.repeat(40_000)}`)).toEqual({ status: 413, body: TOO_LARGE })
    const list = Array.from({ length: 4000 }, () => 1)
    expect(await post('/things/hub-1/shadow', JSON.stringify({ state: { reported: { list } } }))).toMatchObject({ status: 413, body: TOO_LARGE })
    expect((await post('/things/hub-1/shadow?name=one', JSON.stringify({ state: { reported: { a: 1 } } }))).status).toBe(200)
    expect(await post('/things/hub-1/shadow?name=two', JSON.stringify({ state: { reported: { a: 1 } } })))
      .toMatchObject({ status: 400, body: { code: 400, message: 'Too many named shadows for this thing; maximum is 1' } })
    expect(cloud.shim.shadows.refusals()).toMatchObject({ requestBytes: 1, size: 1, namedShadows: 1 })
  })
})
