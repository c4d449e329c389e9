/**
 * A device riding out a coordinator restart: the coordinator stops, the operator changes desired
 * state while the device is offline (through a coordinator whose MQTT port is elsewhere, so the
 * device cannot sneak back in early), and the coordinator comes back on the same data directory and the
 * same MQTT port. The persistent session delivers the delta; buffered telemetry goes out in order.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { connectDevice, type DeltaDocument, type DeviceClient, type DeviceOptions, type PublishOutcome } from '../../devices/sdk/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { tempDir } from '../helpers/tmp.js'
import { freePort, jsonOf, OBSERVER_CONFIG, observe, operator, setDesired, until, type RawObserver } from './device-sdk-helpers.js'

const THING = 'sdk-offline-1'
const TELEMETRY = `things/${THING}/telemetry`

describe('device SDK across a coordinator restart', () => {
  let tmp: { dir: string; remove(): void }
  let mqttPort: number
  const running = new Set<RunningCoordinator>()
  const closers: Array<() => Promise<unknown>> = []

  const start = (mqtt: { port: number }): Promise<RunningCoordinator> =>
    startCoordinator({ ...OBSERVER_CONFIG, listeners: { mqtt, mqtts: null, ws: null, http: { port: 0 } } }, { dataDir: tmp.dir })

  async function startOnFixedPort(): Promise<RunningCoordinator> {
    const run = await start({ port: mqttPort })
    running.add(run)
    return run
  }

  async function connect(thingName: string, extra: Partial<DeviceOptions> = {}): Promise<DeviceClient> {
    const device = await connectDevice({ url: `mqtt://127.0.0.1:${mqttPort}`, thingName, reconnect: { initialDelayMs: 100, maxDelayMs: 300 }, ...extra })
    closers.push(() => device.close())
    return device
  }

  /** Stops the coordinator and waits until the device has noticed. */
  async function stopAndWaitOffline(run: RunningCoordinator, device: DeviceClient): Promise<void> {
    running.delete(run)
    await run.stop({ keepData: true })
    await until('the device to go offline', () => (device.connected ? undefined : true))
  }

  /** Changes desired state through a coordinator whose MQTT listener is not where the device looks. */
  async function changeDesiredWhileOffline(desired: Record<string, unknown>): Promise<void> {
    const api = await start({ port: 0 })
    expect((await setDesired(api.httpUrl, THING, desired)).status).toBe(200)
    await api.stop({ keepData: true })
  }

  beforeEach(async () => {
    tmp = tempDir('edge-coord-sdk-offline-')
    mqttPort = await freePort()
  })

  afterEach(async () => {
    for (const close of closers.splice(0)) await close()
    for (const run of running) await run.stop({ keepData: true })
    running.clear()
    tmp.remove()
  })

  it('receives the delta set while offline and flushes buffered telemetry in order', async () => {
    const first = await startOnFixedPort()
    let observer: RawObserver = await observe(first.mqttUrl, 'sdk-offline-observer', TELEMETRY, { clean: false })
    await observer.client.endAsync()
    const device = await connect(THING)
    const connects: Array<{ sessionPresent: boolean; resubscribed: boolean }> = []
    device.on('connect', (info) => connects.push(info))
    const shadow = device.shadow()
    await shadow.update({ state: { reported: { on: false } } })
    const deltas: DeltaDocument[] = []
    shadow.onDelta((d) => void deltas.push(d))

    await stopAndWaitOffline(first, device)
    const sent: Array<Promise<PublishOutcome>> = [1, 2, 3, 4, 5].map((seq) => device.publishTelemetry({ seq }, { qos: 1 }))
    expect(device.stats().telemetry).toMatchObject({ buffered: 5, sent: 0 })
    await changeDesiredWhileOffline({ on: true })
    expect(deltas).toHaveLength(0)

    const second = await startOnFixedPort()
    await until('the delta queued in the session', () => (deltas.length > 0 ? true : undefined))
    expect(deltas[0]).toMatchObject({ state: { on: true }, version: 2 })
    expect(connects).toEqual([{ sessionPresent: true, resubscribed: false }])
    expect(await Promise.all(sent)).toEqual(['sent', 'sent', 'sent', 'sent', 'sent'])

    // The observer's own persistent session queued the flushed telemetry, in publish order.
    observer = await observe(second.mqttUrl, 'sdk-offline-observer', TELEMETRY, { clean: false })
    closers.push(() => observer.client.endAsync())
    const got = await until('five readings', () => (observer.messages.length >= 5 ? observer.messages : undefined))
    expect(got.map((m) => jsonOf(m.payload))).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }, { seq: 5 }])
  })

  it('resubscribes every shadow after a reconnect that found no session (clean session)', async () => {
    const first = await startOnFixedPort()
    const device = await connect(THING, { clean: true })
    const classic = device.shadow()
    const named = device.shadow('config')
    await classic.update({ state: { reported: { on: false } } })
    await named.update({ state: { reported: { rate: 1 } } })
    const deltas: Array<[string, DeltaDocument]> = []
    classic.onDelta((d) => void deltas.push(['classic', d]))
    named.onDelta((d) => void deltas.push(['config', d]))
    const reconnected = new Promise<{ sessionPresent: boolean; resubscribed: boolean }>((resolve) => device.once('connect', resolve))

    await stopAndWaitOffline(first, device)
    const second = await startOnFixedPort()
    expect(await reconnected).toEqual({ sessionPresent: false, resubscribed: true })
    // A get round trip proves the resubscription (sent before any request) is in place.
    expect((await named.get()).version).toBe(1)
    await setDesired(second.httpUrl, THING, { on: true })
    await operator(second.httpUrl, 'POST', THING, { state: { desired: { rate: 5 } } }, 'config')
    await until('both deltas after resubscribing', () => (deltas.length >= 2 ? true : undefined))
    expect(deltas.map(([name, d]) => [name, d.state]).sort()).toEqual([['classic', { on: true }], ['config', { rate: 5 }]])
  })

  it('drops the oldest buffered telemetry beyond the cap and counts it', async () => {
    const first = await startOnFixedPort()
    const device = await connect(THING, { offlineBuffer: { maxMessages: 3 } })
    await stopAndWaitOffline(first, device)
    const outcomes = [1, 2, 3, 4, 5].map((seq) => device.publishTelemetry({ seq }))
    expect(device.stats().telemetry).toMatchObject({ buffered: 3, dropped: 2 })
    await startOnFixedPort()
    expect(await Promise.all(outcomes)).toEqual(['dropped', 'dropped', 'sent', 'sent', 'sent'])
  })
})
