import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { collect, connect } from '../helpers/mqtt.js'
import { bundle, eventually, kvValue, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'

describe('task triggers', () => {
  let h: TaskHarness
  const clients: MqttClient[] = []
  beforeEach(async () => {
    h = await taskHarness()
  })
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync()
    await h.close()
  })

  it('runs on an MQTT message from a device and publishes what a subscriber receives', async () => {
    const body = `exports.handler = async (event, ctx) => {
      await ctx.publish('things/display-1/show', { from: event.topic, celsius: event.json.celsius, bytes: event.payload.length }, { qos: 1 })
    }`
    await h.service.install(bundle(manifest('relay', {
      triggers: [{ type: 'mqtt', filter: 'things/+/telemetry' }],
      permissions: { subscribe: ['things/+/telemetry'], publish: ['things/display-1/show'] },
    }), body))
    const url = await h.listen()
    const sensor = await connect(url, { clientId: 'sensor-1' })
    const display = await connect(url, { clientId: 'display-1' })
    clients.push(sensor, display)
    const shown = await collect(display, 'things/display-1/show', 1)
    await sensor.publishAsync('things/sensor-1/telemetry', JSON.stringify({ celsius: 21.5 }), { qos: 1 })
    const [message] = await shown.done
    expect(message?.body).toEqual({ from: 'things/sensor-1/telemetry', celsius: 21.5, bytes: 16 })
    // The subscriber can see the publish before the call that made it is counted as finished.
    await eventually(() => h.service.get('relay')?.metrics.calls === 1)
  })

  it('passes non-JSON payloads as bytes only', async () => {
    const body = `exports.handler = async (event, ctx) => { await ctx.state.set('seen', { json: 'json' in event, first: event.payload[0] }) }`
    await h.service.install(bundle(manifest('raw', { triggers: [{ type: 'mqtt', filter: 'raw/in' }], permissions: { subscribe: ['raw/#'] } }), body))
    await h.broker.publish('raw/in', Buffer.from([0xff, 0x00]))
    await eventually(() => h.service.get('raw')?.metrics.calls === 1)
    expect(kvValue(h.db, 'raw', 'seen')).toEqual({ json: false, first: 0xff })
  })

  it('runs on a shadow delta of a selected device, and not for others or for named shadows', async () => {
    h.devices.add({ name: 'lamp-1', attributes: { room: 'kitchen' }, policies: [], certFingerprint: null, tokenHash: null, createdAt: 0 })
    h.devices.add({ name: 'lamp-2', attributes: { room: 'hall' }, policies: [], certFingerprint: null, tokenHash: null, createdAt: 0 })
    const body = `exports.handler = async (event, ctx) => {
      await ctx.shadow.update(event.thingName, { state: { reported: event.delta } })
      await ctx.state.set('last', { thing: event.thingName, version: event.version, type: event.type })
    }`
    const kitchen = { attributes: { room: 'kitchen' } }
    await h.service.install(bundle(manifest('follower', {
      triggers: [{ type: 'shadow-delta', devices: [kitchen] }],
      permissions: { devices: [kitchen] },
    }), body))
    await h.shadows.update({ thingName: 'lamp-2' }, Buffer.from(JSON.stringify({ state: { desired: { on: true } } })))
    await h.shadows.update({ thingName: 'lamp-1', shadowName: 'cfg' }, Buffer.from(JSON.stringify({ state: { desired: { on: true } } })))
    await h.shadows.update({ thingName: 'lamp-1' }, Buffer.from(JSON.stringify({ state: { desired: { on: true } } })))
    await eventually(() => h.service.get('follower')?.metrics.calls === 1, 5000, 'one shadow-delta call')
    const reported = async (thingName: string): Promise<unknown> => ((await h.shadows.get({ thingName })).body['state'] as Record<string, unknown>)['reported']
    expect(await reported('lamp-1')).toEqual({ on: true })
    expect(await reported('lamp-2')).toBeUndefined()
    expect(kvValue(h.db, 'follower', 'last')).toEqual({ thing: 'lamp-1', version: 1, type: 'shadow-delta' })
    // Reporting the desired value clears the delta, so the task's own update does not trigger it again.
    await new Promise((r) => setTimeout(r, 100))
    expect(h.service.get('follower')?.metrics).toMatchObject({ calls: 1, failures: 0 })
  })

  it('runs on a schedule', async () => {
    const body = `exports.handler = async (event, ctx) => { await ctx.state.set('ticks', ((await ctx.state.get('ticks')) ?? 0) + 1) }`
    await h.service.install(bundle(manifest('ticker', { triggers: [{ type: 'schedule', every: '100ms' }] }), body))
    await eventually(() => (h.service.get('ticker')?.metrics.calls ?? 0) >= 3, 3000, 'three ticks')
    expect(kvValue(h.db, 'ticker', 'ticks')).toBeGreaterThanOrEqual(3)
    await h.service.stop('ticker')
    const calls = h.service.get('ticker')?.metrics.calls
    await new Promise((r) => setTimeout(r, 250))
    expect(h.service.get('ticker')?.metrics.calls).toBe(calls)
  })

  it('runs on a cron schedule', async () => {
    const body = `exports.handler = async (event, ctx) => { await ctx.state.set('event', event) }`
    await h.service.install(bundle(manifest('cron', { triggers: [{ type: 'schedule', cron: '* * * * * *' }] }), body))
    await eventually(() => (h.service.get('cron')?.metrics.calls ?? 0) >= 1, 2500, 'a cron tick')
    expect(kvValue(h.db, 'cron', 'event')).toEqual({ type: 'schedule', schedule: '* * * * * *', firedAt: expect.any(Number) })
  })

  it('starts a long-lived task once and keeps serving its triggers from the same isolate', async () => {
    const body = `let started = 0
      exports.start = async () => { started++ }
      exports.handler = async (event) => ({ started, payload: event.payload })`
    await h.service.install(bundle(manifest('daemon', { mode: 'long-lived' }), body))
    await expect(h.service.invoke('daemon', 1)).resolves.toEqual({ started: 1, payload: 1 })
    await expect(h.service.invoke('daemon', 2)).resolves.toEqual({ started: 1, payload: 2 })
  })
})
