/**
 * The demo's devices: simulators from devices/sim on the device SDK, in this process, each
 * registered with the coordinator (`edge-coordinator devices add`) and connecting with its token,
 * as a real sensor on the network would.
 */
import { connectDevice, type DeviceClient } from '../devices/sdk/index.js'
import { SmartPlug, TemperatureSensor, type DeviceLink, type SimDevice } from '../devices/sim/index.js'
import { cli } from './run.js'

/** The room the thermostat task controls, in °C: below the deployed setpoint, above the one the guide suggests. */
export const ROOM_TEMPERATURE = 19

/**
 * The thermostat example reads `temp-sensor-1` and switches `heater-1` (its manifest grants just
 * these two); the other sensors give the telemetry aggregator more to average.
 */
const DEVICES: Array<{ name: string; make: (link: DeviceLink) => SimDevice }> = [
  { name: 'temp-sensor-1', make: (link) => new TemperatureSensor(link, { seed: 1, baseTemperature: ROOM_TEMPERATURE }) },
  { name: 'temp-sensor-2', make: (link) => new TemperatureSensor(link, { seed: 2, baseTemperature: 23, baseHumidity: 38 }) },
  { name: 'temp-sensor-3', make: (link) => new TemperatureSensor(link, { seed: 3, baseTemperature: 6, baseHumidity: 80 }) },
  { name: 'heater-1', make: (link) => new SmartPlug(link, { seed: 4, loadW: 1500 }) },
]

export const DEVICE_NAMES = DEVICES.map((d) => d.name)

export interface Devices {
  stop(): Promise<void>
}

/**
 * Registers each device with the attribute the health-check example selects devices by
 * (`monitored=true`), connects it over MQTT with its token, and starts its simulation: it reads
 * its shadow, reports its state, then publishes telemetry every second.
 */
export async function startDevices(coordinatorDataDir: string, mqttUrl: string): Promise<Devices> {
  const links: DeviceClient[] = []
  const sims: SimDevice[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(sims.map((s) => s.stop()))
    await Promise.all(links.map((l) => l.close()))
  }
  try {
    for (const { name, make } of DEVICES) {
      const out = await cli('edge-coordinator', ['devices', 'add', name, '--attr', 'monitored=true', '--token', '--no-cert', '--data-dir', coordinatorDataDir])
      const token = /^\s*token:\s*(\S+)/m.exec(out)?.[1]
      if (token === undefined) throw new Error(`devices add ${name} printed no token`)
      const link = await connectDevice({ url: mqttUrl, thingName: name, token })
      links.push(link)
      const sim = make(link)
      await sim.start()
      sims.push(sim)
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { stop }
}
