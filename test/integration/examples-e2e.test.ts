/**
 * The three example tasks end to end: packed and signed with `edge-task`, pushed to the real daemon
 * (a child process) that trusts only the test's key, driving and observing simulated devices that
 * talk MQTT over real sockets.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Encoder } from 'cbor-x'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { keyId, type TaskInfo } from '../../coordinator/protocol/index.js'
import { connectDevice, type DeviceClient, type DeviceOptions } from '../../devices/sdk/index.js'
import { SmartPlug, TemperatureSensor, type SimDevice } from '../../devices/sim/index.js'
import { startDaemon, type Daemon } from '../helpers/daemon.js'
import { addDevice } from '../helpers/devices-cli.js'
import { EXAMPLES, edgeTaskOk } from '../helpers/edge-task.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until `check` returns something other than undefined. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

interface Summary {
  window: { start: number; end: number }
  devices: Record<string, { n: number; avgTemperature: number | null; avgHumidity: number | null }>
}

interface HealthReport {
  time: number
  staleAfterSeconds: number
  devices: number
  healthy: string[]
  stale: Array<{ name: string; lastReportedAt: number | null; ageSeconds: number | null; reason: string }>
}

const EXAMPLE_NAMES = ['thermostat', 'telemetry-aggregator', 'health-check'] as const

describe('example tasks on the daemon with simulated devices', () => {
  const tmp = tempDir('edge-examples-e2e-')
  const dataDir = join(tmp.dir, 'data')
  const bundles = new Map<string, string>()
  let signer: string
  let daemon: Daemon
  let api: string
  let mqttUrl: string
  const sims: SimDevice[] = []
  const links: DeviceClient[] = []
  const clients: MqttClient[] = []

  const push = (name: string, config?: object): Promise<string> =>
    edgeTaskOk(['push', bundles.get(name) ?? '', '--coordinator', api, ...(config === undefined ? [] : ['--config', JSON.stringify(config)])], tmp.dir)

  const device = async (thingName: string, extra: Partial<DeviceOptions> = {}): Promise<DeviceClient> => {
    const link = await connectDevice({ url: mqttUrl, thingName, reconnect: false, ...extra })
    links.push(link)
    return link
  }

  const started = async <T extends SimDevice>(sim: T): Promise<T> => {
    sims.push(sim)
    await sim.start()
    return sim
  }

  const shadow = async (thing: string, name?: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${api}/things/${thing}/shadow${name === undefined ? '' : `?name=${name}`}`)
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  const reported = async (thing: string): Promise<Record<string, unknown> | undefined> => {
    const s = await shadow(thing)
    return s.status === 200 ? (s.body['state'] as { reported?: Record<string, unknown> }).reported : undefined
  }

  const taskInfo = async (name: string): Promise<TaskInfo> => (await (await fetch(`${api}/v1/tasks/${name}`)).json()) as TaskInfo

  /** An anonymous loopback client: the daemon's config gives it the `observer` policy. */
  const observer = async (clientId: string, filters: string[]): Promise<MqttClient> => {
    const client = await connect(mqttUrl, { clientId })
    clients.push(client)
    const granted = await client.subscribeAsync(filters, { qos: 0 })
    expect(granted.map((g) => g.qos)).toEqual(filters.map(() => 0))
    return client
  }

  beforeAll(async () => {
    await edgeTaskOk(['keygen', '--out', 'keys'], tmp.dir)
    const publicKeyFile = join(tmp.dir, 'keys/signing-key.pub.pem')
    signer = keyId(readFileSync(publicKeyFile, 'utf8'))
    for (const name of EXAMPLE_NAMES) {
      const file = join(tmp.dir, `${name}.bundle`)
      await edgeTaskOk(['pack', join(EXAMPLES, name), '--key', 'keys/signing-key.pem', '--out', file], tmp.dir)
      bundles.set(name, file)
    }
    const config = {
      tasks: { trustedKeys: [publicKeyFile], allowUnsigned: false },
      auth: { anonymousPolicies: ['observer'] },
      policies: [{ name: 'observer', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['gateway/#', 'things/+/telemetry'] }] }],
    }
    writeFileSync(join(tmp.dir, 'config.json'), JSON.stringify(config))
    daemon = await startDaemon(['--config', join(tmp.dir, 'config.json'), '--data-dir', dataDir])
    api = `http://127.0.0.1:${daemon.endpoints.http.port}`
    mqttUrl = `mqtt://127.0.0.1:${daemon.endpoints.mqtt.port}`
  }, 60_000)

  afterEach(async () => {
    for (const sim of sims.splice(0)) await sim.stop()
    for (const link of links.splice(0)) await link.close()
    for (const client of clients.splice(0)) await client.endAsync()
  })

  afterAll(async () => {
    if (daemon !== undefined) {
      expect(daemon.child.exitCode).toBeNull()
      daemon.child.kill('SIGTERM')
      expect(await daemon.exited).toBe(0)
    }
    tmp.remove()
  })

  it('thermostat: a cold sensor switches the heater plug on; once warm, a setpoint delta switches it off', async () => {
    expect(await push('thermostat')).toMatch(/^thermostat 1\.0\.0 {2}running\n/)
    expect(await taskInfo('thermostat')).toMatchObject({ state: 'running', signer })
    const heater = await started(new SmartPlug(await device('heater-1'), { seed: 3, intervalMs: 200 }))
    const sensorLink = await device('temp-sensor-1')
    const cold = await started(new TemperatureSensor(sensorLink, { seed: 1, baseTemperature: 17, intervalMs: 200 }))

    const first = JSON.parse(await edgeTaskOk(['invoke', 'thermostat', '--coordinator', api], tmp.dir)) as Record<string, unknown>
    expect(first).toMatchObject({ setpoint: 21, hysteresis: 0.5, heater: 'on', sent: true })
    expect(first['temperature']).toBeLessThan(20.5)
    await until('the plug to report on', async () => ((await reported('heater-1'))?.['on'] === true ? true : undefined))
    expect(heater.model.on).toBe(true)

    // The room warms up: a sensor reading well above setpoint + hysteresis replaces the cold one.
    await cold.stop()
    await started(new TemperatureSensor(sensorLink, { seed: 2, baseTemperature: 25, intervalMs: 200 }))
    expect((await reported('temp-sensor-1'))?.['temperature']).toBeGreaterThan(24)
    // An operator raises the setpoint through heater-1's `thermostat` named shadow: the delta runs the task.
    const res = await fetch(`${api}/things/heater-1/shadow?name=thermostat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state: { desired: { setpoint: 22 } } }) })
    expect(res.status).toBe(200)
    await until('the plug to report off', async () => ((await reported('heater-1'))?.['on'] === false ? true : undefined))
    expect(heater.model.on).toBe(false)

    // The task adopted the setpoint and reported it back, which cleared the delta.
    const settings = await shadow('heater-1', 'thermostat')
    expect(settings.body['state']).toEqual({ desired: { setpoint: 22 }, reported: { setpoint: 22, hysteresis: 0.5 } })
    expect((await shadow('heater-1')).body['state']).toMatchObject({ desired: { on: false }, reported: { on: false } })
    const info = await taskInfo('thermostat')
    expect(info.metrics.failures).toBe(0)
    expect(info.metrics.calls).toBeGreaterThanOrEqual(2)
  })

  it('telemetry-aggregator: publishes CBOR summaries whose per-device averages match what the sensors sent', async () => {
    const sent = new Map<string, Array<{ temperature: number; humidity: number }>>()
    const summaries: Summary[] = []
    const watcher = await observer('observer-agg', ['gateway/telemetry/summary', 'things/+/telemetry'])
    watcher.on('message', (topic, payload) => {
      if (topic === 'gateway/telemetry/summary') {
        summaries.push(cbor.decode(payload) as Summary)
        return
      }
      const thing = /^things\/(agg-[^/]+)\/telemetry$/.exec(topic)?.[1]
      if (thing !== undefined) sent.set(thing, [...(sent.get(thing) ?? []), JSON.parse(payload.toString()) as { temperature: number; humidity: number }])
    })
    expect(await push('telemetry-aggregator', { intervalMs: 300 })).toMatch(/^telemetry-aggregator 1\.0\.0 {2}running\n/)

    const bases = { 'agg-sensor-1': 18, 'agg-sensor-2': 26 }
    for (const [i, [name, base]] of Object.entries(bases).entries()) {
      await started(new TemperatureSensor(await device(name), { seed: 10 + i, baseTemperature: base, intervalMs: 50 }))
    }
    await sleep(1500)
    for (const sim of sims.splice(0)) await sim.stop()

    const counted = (name: string): number => summaries.reduce((n, s) => n + (s.devices[name]?.n ?? 0), 0)
    // Every message the sensors sent lands in exactly one window, however the windows fall.
    await until('every sent message to be summarized', () => (Object.keys(bases).every((name) => counted(name) === (sent.get(name)?.length ?? -1)) ? true : undefined), 5000)
    expect(summaries.length).toBeGreaterThanOrEqual(3)
    for (const [name, base] of Object.entries(bases)) {
      const readings = sent.get(name) ?? []
      expect(readings.length).toBeGreaterThan(10)
      const mean = (pick: (r: { temperature: number; humidity: number }) => number): number => readings.reduce((sum, r) => sum + pick(r), 0) / readings.length
      const weighted = (pick: (d: Summary['devices'][string]) => number | null): number =>
        summaries.reduce((sum, s) => sum + (s.devices[name] === undefined ? 0 : s.devices[name].n * (pick(s.devices[name]) ?? NaN)), 0) / readings.length
      // Each window's averages are rounded to two decimals.
      expect(Math.abs(weighted((d) => d.avgTemperature) - mean((r) => r.temperature))).toBeLessThanOrEqual(0.006)
      expect(Math.abs(weighted((d) => d.avgHumidity) - mean((r) => r.humidity))).toBeLessThanOrEqual(0.006)
      expect(Math.abs(mean((r) => r.temperature) - base)).toBeLessThan(1)
    }
    for (const s of summaries) {
      expect(s.window.end).toBeGreaterThanOrEqual(s.window.start)
      expect(Object.keys(s.devices).every((name) => name in bases)).toBe(true)
    }
    // Empty windows publish nothing once the sensors are quiet.
    const published = summaries.length
    await sleep(700)
    expect(summaries).toHaveLength(published)
    expect((await taskInfo('telemetry-aggregator')).metrics).toMatchObject({ failures: 0, rejected: 0 })
  })

  it('health-check: invoked with edge-task, returns the report of monitored devices and publishes it to gateway/health', async () => {
    const tokens = new Map<string, string>()
    for (const name of ['hc-old', 'hc-fresh', 'hc-silent']) {
      tokens.set(name, (await addDevice(dataDir, name, ['--attr', 'monitored=true', '--token', '--no-cert'])).token ?? '')
    }
    tokens.set('hc-elsewhere', (await addDevice(dataDir, 'hc-elsewhere', ['--attr', 'monitored=false', '--token', '--no-cert'])).token ?? '')
    expect(await push('health-check', { staleAfterSeconds: 2 })).toMatch(/^health-check 1\.0\.0 {2}running\n/)
    const withToken = (name: string): Promise<DeviceClient> => device(name, { token: tokens.get(name) ?? '' })

    const old = await started(new TemperatureSensor(await withToken('hc-old'), { seed: 5, intervalMs: 60_000 }))
    await started(new SmartPlug(await withToken('hc-elsewhere'), { seed: 6, intervalMs: 60_000 }))
    await old.stop()
    // Shadow metadata has one-second resolution: three seconds is more than staleAfterSeconds (2) whatever the rounding.
    await sleep(3100)
    await started(new SmartPlug(await withToken('hc-fresh'), { seed: 7, intervalMs: 60_000 }))

    const reports: HealthReport[] = []
    const watcher = await observer('observer-health', ['gateway/health'])
    watcher.on('message', (_topic, payload) => reports.push(JSON.parse(payload.toString()) as HealthReport))
    const report = JSON.parse(await edgeTaskOk(['invoke', 'health-check', '--coordinator', api], tmp.dir)) as HealthReport
    expect(report).toMatchObject({ staleAfterSeconds: 2, devices: 3, healthy: ['hc-fresh'] })
    expect([...report.stale].sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
      { name: 'hc-old', lastReportedAt: expect.any(Number), ageSeconds: expect.any(Number), reason: expect.stringMatching(/^last reported \d+ s ago$/) },
      { name: 'hc-silent', lastReportedAt: null, ageSeconds: null, reason: 'no shadow' },
    ])
    expect(report.stale.find((d) => d.name === 'hc-old')?.ageSeconds).toBeGreaterThanOrEqual(3)
    await until('the report on gateway/health', () => (reports.some((r) => r.time === report.time) ? true : undefined))
    expect(reports.find((r) => r.time === report.time)).toEqual(report)
    expect((await taskInfo('health-check')).metrics.failures).toBe(0)
  })
})
