/**
 * What a connected coordinator may do on the cloud shim's broker.
 *
 * - Its own thing: `$aws/things/{name}/shadow/#` and `cloud/{name}/#` (the default policy, with
 *   `${thingName}` = the client id, which the certificate or token proved).
 * - Its devices: `$aws/things/{device}/shadow/#` for every device whose registry relation
 *   `coordinator` names it. MQTT cannot express "the devices of X" as a filter, and a policy
 *   variable holds one value, so each coordinator gets a policy of its own, `devices-of:{name}`,
 *   listing its devices. The policies are recomputed from the registry whenever a thing changes
 *   (lazily, on the next authorization after the change).
 *
 * Policies are decided per packet, but the broker checks subscriptions only when they are made.
 * The broker's receive check (authorizeReceive, on every message on its way out) follows the
 * rebuilt policies, so a coordinator that loses a device (moved or removed) stops receiving that
 * device's shadow traffic at once, even through a subscription restored from a persistent session.
 */
import { PolicyEngine, type Policy, type Principal } from '../../coordinator/broker/index.js'
import type { DeviceRecord } from '../../coordinator/store/index.js'
import type { Registry } from '../registry/index.js'
import type { CredentialStore } from './credential-store.js'

export const COORDINATOR_POLICY: Policy = {
  name: 'cloud-coordinator',
  statements: [{ effect: 'allow', actions: ['publish', 'subscribe'], resources: ['$aws/things/${thingName}/shadow/#', 'cloud/${thingName}/#'] }],
}

export const devicesPolicyName = (coordinator: string): string => `devices-of:${coordinator}`

type Decision = ReturnType<PolicyEngine['authorizePublish']>

/**
 * A PolicyEngine whose per-coordinator policies follow the registry. The Broker takes a
 * PolicyEngine, so this is one, delegating to an engine rebuilt when the registry changes.
 */
export class RegistryPolicy extends PolicyEngine {
  readonly #registry: Registry
  #engine: PolicyEngine | undefined

  constructor(registry: Registry) {
    super({ policies: [], defaultPolicy: COORDINATOR_POLICY })
    this.#registry = registry
    // Attribute and tag changes (every coordinator registration) leave the policies as they are.
    registry.on('thingChanged', (thing, previous) => {
      if (previous === undefined || previous.kind !== thing.kind || previous.coordinator !== thing.coordinator) this.#engine = undefined
    })
    registry.on('thingRemoved', () => {
      this.#engine = undefined
    })
  }

  override authorizePublish(principal: Principal, topic: string): Decision {
    return this.#current().authorizePublish(principal, topic)
  }

  override authorizeSubscribe(principal: Principal, filter: string): Decision {
    return this.#current().authorizeSubscribe(principal, filter)
  }

  override authorizeReceive(principal: Principal, topic: string): boolean {
    return this.#current().authorizeReceive(principal, topic)
  }

  override unknownPolicies(principal: Principal): string[] {
    return this.#current().unknownPolicies(principal)
  }

  #current(): PolicyEngine {
    this.#engine ??= new PolicyEngine({ policies: coordinatorPolicies(this.#registry), defaultPolicy: COORDINATOR_POLICY })
    return this.#engine
  }
}

function coordinatorPolicies(registry: Registry): Policy[] {
  const devices = new Map<string, string[]>()
  for (const d of registry.listThings({ kind: 'device' })) {
    if (d.coordinator !== null) devices.set(d.coordinator, [...(devices.get(d.coordinator) ?? []), d.name])
  }
  return registry.listThings({ kind: 'coordinator' }).map((c) => {
    const names = devices.get(c.name) ?? []
    const statements: Policy['statements'] = names.length === 0 ? [] : [{
      effect: 'allow', actions: ['publish', 'subscribe'], resources: names.map((d) => `$aws/things/${d}/shadow/#`),
    }]
    return { name: devicesPolicyName(c.name), statements }
  })
}

/**
 * The broker's view of a coordinator: the DeviceRecord shape its identity hook expects, from the
 * registry thing and its credentials; undefined for anything that is not a provisioned coordinator.
 */
export function coordinatorIdentity(registry: Registry, credentials: CredentialStore, name: string): DeviceRecord | undefined {
  const thing = registry.getThing(name)
  const credential = credentials.get(name)
  if (thing?.kind !== 'coordinator' || credential === undefined) return undefined
  return { ...credential, attributes: thing.attributes, policies: [devicesPolicyName(name)] }
}
