/** The simulator catalogue, by the kind names the swarm CLI takes. */
import type { DeviceLink } from './link.js'
import { Light } from './light.js'
import { DoorLock } from './lock.js'
import { SmartPlug } from './plug.js'
import { TemperatureSensor } from './sensor.js'
import type { SimDevice, SimOptions } from './sim-device.js'
import { Thermostat } from './thermostat.js'

export const SIM_KINDS = ['sensor', 'plug', 'thermostat', 'lock', 'light'] as const
export type SimKind = (typeof SIM_KINDS)[number]

const FACTORIES: Record<SimKind, (link: DeviceLink, options: SimOptions) => SimDevice> = {
  sensor: (link, o) => new TemperatureSensor(link, o),
  plug: (link, o) => new SmartPlug(link, o),
  thermostat: (link, o) => new Thermostat(link, o),
  lock: (link, o) => new DoorLock(link, o),
  light: (link, o) => new Light(link, o),
}

export function isSimKind(s: string): s is SimKind {
  return (SIM_KINDS as readonly string[]).includes(s)
}

export function createSim(kind: SimKind, link: DeviceLink, options: SimOptions = {}): SimDevice {
  return FACTORIES[kind](link, options)
}
