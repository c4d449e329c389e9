/**
 * What a task may do, derived from its manifest and nothing else.
 *
 * Topics go through the same PolicyEngine devices get, with the manifest's publish and subscribe
 * lists as the only policy, so reserved prefixes (`$SYS/`, `$coord/`) and shadow reply topics are
 * refused to tasks exactly as to devices. Devices are granted by name or by attribute selector:
 *
 * - A name grants that thing whether or not it is in the local registry: shadows exist for things
 *   the registry has not seen yet (a device provisioned in the cloud, or one that will connect
 *   later), and a name is an explicit, reviewable grant, like an AWS IoT policy naming a thing ARN.
 * - An attribute selector grants every *registered* device carrying all its attributes, evaluated
 *   on each request, so a device registered or re-attributed later is covered without reinstalling.
 */
import type { DeviceRecord } from '../store/index.js'
import { PolicyEngine, type Principal } from '../broker/index.js'
import type { DeviceSelector, TaskPermissions } from '../protocol/index.js'
import { manifestInvalid } from './errors.js'

/** The registry reads permissions need; DeviceStore satisfies it. */
export interface DeviceLookup {
  get(name: string): DeviceRecord | undefined
  list(): DeviceRecord[]
}

export type Decision = { allowed: true } | { allowed: false; reason: string }

const ALLOWED: Decision = Object.freeze({ allowed: true })

/** True when `device` carries every attribute the selector asks for. */
function attributesMatch(wanted: Record<string, string>, device: DeviceRecord): boolean {
  return Object.entries(wanted).every(([key, value]) => Object.hasOwn(device.attributes, key) && device.attributes[key] === value)
}

/** Whether `thingName` is selected; attribute selectors consult the registry at call time. */
export function deviceSelected(selectors: readonly DeviceSelector[], thingName: string, devices: DeviceLookup): boolean {
  if (selectors.some((s) => s === thingName)) return true
  const attributeSelectors = selectors.filter((s): s is { attributes: Record<string, string> } => typeof s !== 'string')
  if (attributeSelectors.length === 0) return false
  const device = devices.get(thingName)
  return device !== undefined && attributeSelectors.some((s) => attributesMatch(s.attributes, device))
}

/** Registered devices the selectors pick, plus named things not registered (attributes unknown, so empty). */
export function selectDevices(selectors: readonly DeviceSelector[], devices: DeviceLookup): Array<{ name: string; attributes: Record<string, string> }> {
  const registered = devices.list()
  const picked = registered.filter((d) => deviceSelected(selectors, d.name, devices)).map((d) => ({ name: d.name, attributes: { ...d.attributes } }))
  const known = new Set(registered.map((d) => d.name))
  const unregistered = selectors.filter((s): s is string => typeof s === 'string' && !known.has(s))
  return [...picked, ...[...new Set(unregistered)].map((name) => ({ name, attributes: {} }))]
}

/** The policy a task's topics are judged by: its own lists, nothing inherited. */
function taskPolicyEngine(name: string, permissions: TaskPermissions): PolicyEngine {
  const statements = [
    { effect: 'allow' as const, actions: ['publish' as const], resources: [...permissions.publish] },
    { effect: 'allow' as const, actions: ['subscribe' as const], resources: [...permissions.subscribe] },
  ]
  try {
    return new PolicyEngine({ policies: [], defaultPolicy: { name: `task:${name}`, statements } })
  } catch (err) {
    throw manifestInvalid(name, `permissions: ${(err as Error).message}`, err)
  }
}

/** A task's grants, compiled once per installed version. */
export class TaskGrants {
  readonly #task: string
  readonly #engine: PolicyEngine
  readonly #principal: Principal
  readonly #devices: readonly DeviceSelector[]
  readonly #invoke: ReadonlySet<string>

  /** Throws COORD_TASK_MANIFEST_INVALID when a publish or subscribe resource is not a valid filter. */
  constructor(task: string, permissions: TaskPermissions) {
    this.#task = task
    this.#engine = taskPolicyEngine(task, permissions)
    this.#principal = Object.freeze({ thingName: task, attributes: {}, policies: [] })
    this.#devices = Object.freeze([...permissions.devices])
    this.#invoke = new Set(permissions.invoke)
  }

  publish(topic: string): Decision {
    return this.#engine.authorizePublish(this.#principal, topic)
  }

  subscribe(filter: string): Decision {
    return this.#engine.authorizeSubscribe(this.#principal, filter)
  }

  device(thingName: string, devices: DeviceLookup): Decision {
    if (deviceSelected(this.#devices, thingName, devices)) return ALLOWED
    return { allowed: false, reason: 'the manifest grants no such device' }
  }

  /** A task never invokes itself: with maxConcurrent 1 the call would wait on its own slot. */
  invoke(target: string): Decision {
    if (target === this.#task) return { allowed: false, reason: 'a task cannot invoke itself' }
    if (this.#invoke.has(target)) return ALLOWED
    return { allowed: false, reason: 'the manifest does not list it under permissions.invoke' }
  }

  get deviceSelectors(): readonly DeviceSelector[] {
    return this.#devices
  }
}
