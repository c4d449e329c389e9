/**
 * The demo's status line, printed every few seconds: what the heater and the sensor report in
 * their shadows (read through the coordinator's HTTP API, as any tool would), the setpoint in
 * force, and the telemetry aggregator's last summary (CBOR on `gateway/telemetry/summary`, read
 * by an anonymous MQTT client on loopback, which the demo's config lets observe `gateway/#`).
 */
import { Decoder } from 'cbor-x'
import mqtt from 'mqtt'

interface Summary {
  window: { start: number; end: number }
  devices: Record<string, { n: number }>
}

export interface StatusOptions {
  coordinatorUrl: string
  mqttUrl: string
  /** The setpoint deployed in the thermostat's config, in force until an operator changes it. */
  deployedSetpoint: number
  intervalMs: number
  print: (line: string) => void
}

export async function startStatus(o: StatusOptions): Promise<{ stop(): Promise<void> }> {
  const cbor = new Decoder({ mapsAsObjects: true })
  let summary: Summary | undefined
  const observer = await mqtt.connectAsync(o.mqttUrl, { clientId: 'demo-status' })
  observer.on('message', (_topic, payload) => {
    summary = cbor.decode(payload) as Summary
  })
  await observer.subscribeAsync('gateway/telemetry/summary')

  const reported = async (thing: string, shadow?: string): Promise<Record<string, unknown>> => {
    const res = await fetch(`${o.coordinatorUrl}/things/${thing}/shadow${shadow === undefined ? '' : `?name=${shadow}`}`)
    if (res.status === 404) return {}
    if (!res.ok) throw new Error(`the coordinator answered ${res.status}`)
    return ((await res.json()) as { state: { reported?: Record<string, unknown> } }).state.reported ?? {}
  }
  const line = async (): Promise<string> => {
    const [heater, sensor, settings] = await Promise.all([reported('heater-1'), reported('temp-sensor-1'), reported('heater-1', 'thermostat')])
    const setpoint = typeof settings['setpoint'] === 'number' ? settings['setpoint'] : o.deployedSetpoint
    return [
      new Date().toTimeString().slice(0, 8),
      `heater-1 ${heater['on'] === true ? 'on' : 'off'} (${String(heater['power'])} W)`,
      `temp-sensor-1 ${String(sensor['temperature'])} °C`,
      `setpoint ${setpoint} °C`,
      summary === undefined ? 'no telemetry summary yet' : describe(summary),
    ].join('  ')
  }

  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    line().then(o.print, (err: Error) => o.print(`status unavailable: ${err.message}`)).finally(() => { busy = false })
  }, o.intervalMs)
  return {
    stop: async () => {
      clearInterval(timer)
      await observer.endAsync()
    },
  }
}

function describe(s: Summary): string {
  const counts = Object.values(s.devices)
  const seconds = Math.round((s.window.end - s.window.start) / 1000)
  return `last summary: ${counts.reduce((n, d) => n + d.n, 0)} readings from ${counts.length} sensors in ${seconds} s`
}
