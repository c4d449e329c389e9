/**
 * The device SDK against a real in-process coordinator over TCP: shadow get/update/delete (classic
 * and named), AWS's rejection codes, operator deltas, other clients' changes, telemetry, and a
 * simulated plug obeying the operator.
 */
import { decode as decodeCbor } from 'cbor-x'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDevice, ShadowRejectedError, type DeltaDocument, type DeviceClient, type ShadowChange } from '../../devices/sdk/index.js'
import { SmartPlug } from '../../devices/sim/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { jsonOf, OBSERVER_CONFIG, observe, operator, setDesired, until, type RawObserver } from './device-sdk-helpers.js'

describe('device SDK: shadows and telemetry', () => {
  let run: RunningCoordinator
  let observer: RawObserver
  const devices: DeviceClient[] = []

  async function device(thingName: string): Promise<DeviceClient> {
    const d = await connectDevice({ url: run.mqttUrl, thingName, requestTimeoutMs: 5000 })
    devices.push(d)
    return d
  }

  beforeAll(async () => {
    run = await startCoordinator(OBSERVER_CONFIG)
    observer = await observe(run.mqttUrl, 'sdk-observer', 'things/+/telemetry')
  })
  afterAll(async () => {
    for (const d of devices.splice(0)) await d.close()
    await observer?.client.endAsync()
    await run?.stop()
  })

  it('gets, updates and deletes the classic shadow with AWS document shapes', async () => {
    const shadow = (await device('sdk-lamp')).shadow()
    await expect(shadow.get()).rejects.toMatchObject({ name: 'ShadowRejectedError', code: 404, message: "No shadow exists with name: 'sdk-lamp'" })
    const accepted = await shadow.update({ state: { reported: { on: false, level: 3 } } })
    expect(accepted).toMatchObject({ state: { reported: { on: false, level: 3 } }, version: 1 })
    const doc = await shadow.get()
    expect(doc).toMatchObject({ state: { reported: { on: false, level: 3 } }, version: 1 })
    expect(doc.metadata.reported).toMatchObject({ on: { timestamp: expect.any(Number) } })
    expect(await shadow.delete()).toMatchObject({ version: 1 })
    await expect(shadow.get()).rejects.toBeInstanceOf(ShadowRejectedError)
    expect(shadow.version).toBe(1)
  })

  it("rejects with AWS's code and message, e.g. 409 on a stale version", async () => {
    const shadow = (await device('sdk-locked')).shadow()
    await shadow.update({ state: { reported: { a: 1 } } })
    await shadow.update({ state: { reported: { a: 2 } } })
    const err: unknown = await shadow.update({ state: { reported: { a: 3 } }, version: 1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShadowRejectedError)
    expect(err).toMatchObject({ code: 409, message: 'Version conflict', operation: 'update' })
    expect((await shadow.update({ state: { reported: { a: 3 } }, version: 2 })).version).toBe(3)
    expect(shadow.stats()).toMatchObject({ updates: 3, rejected: 1 })
  })

  it('keeps named shadows apart from the classic shadow', async () => {
    const d = await device('sdk-multi')
    await d.shadow('config').update({ state: { reported: { rate: 5 } } })
    await d.shadow().update({ state: { reported: { on: true } } })
    expect((await d.shadow('config').get()).state.reported).toEqual({ rate: 5 })
    expect((await d.shadow().get()).state.reported).toEqual({ on: true })
    expect(d.shadow('config')).toBe(d.shadow('config'))
    expect((await operator(run.httpUrl, 'GET', 'sdk-multi', undefined, 'config')).json).toMatchObject({ state: { reported: { rate: 5 } } })
  })

  it("delivers an operator's desired change to onDelta", async () => {
    const shadow = (await device('sdk-plug')).shadow()
    await shadow.update({ state: { reported: { on: false } } })
    const deltas: DeltaDocument[] = []
    shadow.onDelta((d) => void deltas.push(d))
    expect((await setDesired(run.httpUrl, 'sdk-plug', { on: true })).status).toBe(200)
    const [delta] = await until('the delta', () => (deltas.length > 0 ? deltas : undefined))
    expect(delta).toMatchObject({ state: { on: true }, version: 2 })
  })

  it("reports other clients' updates and deletes to onChange, but not its own", async () => {
    const shadow = (await device('sdk-watch')).shadow()
    const changes: ShadowChange[] = []
    shadow.onChange((c) => void changes.push(c))
    await shadow.update({ state: { reported: { mine: 1 } } })
    await operator(run.httpUrl, 'POST', 'sdk-watch', { state: { desired: { theirs: 2 } } })
    await operator(run.httpUrl, 'DELETE', 'sdk-watch')
    await until('two foreign changes', () => (changes.length >= 2 ? true : undefined))
    expect(changes.map((c) => c.operation)).toEqual(['update', 'delete'])
    expect(changes[0]?.document).toMatchObject({ state: { desired: { theirs: 2 } }, version: 2 })
    expect(changes[1]?.document).toMatchObject({ version: 2 })
  })

  it('runs a simulated plug that obeys desired.on and reports on and power', async () => {
    const plug = new SmartPlug(await device('sdk-sim-plug'), { seed: 1, loadW: 100, intervalMs: 100 })
    await plug.start()
    const reported = async (): Promise<{ reported: Record<string, unknown>; delta: unknown }> => {
      const state = (await operator(run.httpUrl, 'GET', 'sdk-sim-plug')).json.state as Record<string, Record<string, unknown>>
      return { reported: state.reported ?? {}, delta: state.delta }
    }
    expect((await reported()).reported).toMatchObject({ on: false })
    await setDesired(run.httpUrl, 'sdk-sim-plug', { on: true })
    const on = await until('the plug to switch on', async () => {
      const r = await reported()
      return r.reported.on === true ? r : undefined
    })
    expect(on.delta).toBeUndefined()
    expect(Math.abs((on.reported.power as number) - 100)).toBeLessThan(10)
    await setDesired(run.httpUrl, 'sdk-sim-plug', { on: false })
    const off = await until('the plug to switch off', async () => {
      const r = await reported()
      return r.reported.on === false ? r : undefined
    })
    expect(off.reported.power as number).toBeLessThan(1)
    await plug.stop()
    expect(plug.stats()).toMatchObject({ errors: 0 })
  })

  it('publishes telemetry as JSON or CBOR, on the default topic or a given one', async () => {
    const d = await device('sdk-meter')
    expect(await d.publishTelemetry({ w: 12.5 }, { qos: 1 })).toBe('sent')
    expect(await d.publishTelemetry({ w: 13, tags: ['a'] }, { encoding: 'cbor', qos: 1 })).toBe('sent')
    const got = await until('two telemetry messages', () => {
      const mine = observer.messages.filter((m) => m.topic === 'things/sdk-meter/telemetry')
      return mine.length >= 2 ? mine : undefined
    })
    expect(jsonOf(got[0]!.payload)).toEqual({ w: 12.5 })
    expect(decodeCbor(got[1]!.payload)).toEqual({ w: 13, tags: ['a'] })
    expect(d.stats().telemetry).toMatchObject({ sent: 2, dropped: 0, buffered: 0 })
  })
})
