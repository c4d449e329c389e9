import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { openDatabase } from '../../../coordinator/store/index.js'
import { CredentialStore, RegistryPolicy, coordinatorIdentity, devicesPolicyName } from '../../../cloud-shim/identity/index.js'
import { Registry } from '../../../cloud-shim/registry/index.js'

function setUp(): { registry: Registry; policy: RegistryPolicy; credentials: CredentialStore } {
  const db = openDatabase(':memory:')
  const registry = new Registry({ db, clock: { now: () => 0 }, log: silentLogger() })
  registry.createThing({ name: 'hub-1', kind: 'coordinator' })
  registry.createThing({ name: 'hub-2', kind: 'coordinator' })
  registry.createThing({ name: 'lamp-1', kind: 'device', coordinator: 'hub-1' })
  registry.createThing({ name: 'lamp-2', kind: 'device', coordinator: 'hub-2' })
  return { registry, policy: new RegistryPolicy(registry), credentials: new CredentialStore(db) }
}

const hub1 = { thingName: 'hub-1', attributes: {}, policies: [devicesPolicyName('hub-1')] }

describe('coordinator policy from the registry', () => {
  it("should allow a coordinator its own shadows, its cloud/ topics and its devices' shadows, and nothing of another coordinator", () => {
    const { policy } = setUp()
    expect(policy.authorizePublish(hub1, '$aws/things/hub-1/shadow/update').allowed).toBe(true)
    expect(policy.authorizePublish(hub1, '$aws/things/hub-1/shadow/name/deploy/update').allowed).toBe(true)
    expect(policy.authorizePublish(hub1, 'cloud/hub-1/telemetry').allowed).toBe(true)
    expect(policy.authorizeSubscribe(hub1, '$aws/things/lamp-1/shadow/update/delta').allowed).toBe(true)
    expect(policy.authorizePublish(hub1, '$aws/things/lamp-2/shadow/update').allowed).toBe(false)
    expect(policy.authorizePublish(hub1, '$aws/things/hub-2/shadow/update').allowed).toBe(false)
    expect(policy.authorizeSubscribe(hub1, 'cloud/hub-2/#').allowed).toBe(false)
    expect(policy.authorizeSubscribe(hub1, '$aws/things/+/shadow/#').allowed).toBe(false)
    // Replies come only from the cloud shim's shadow service.
    expect(policy.authorizePublish(hub1, '$aws/things/hub-1/shadow/update/accepted').allowed).toBe(false)
  })

  it('should follow the registry when a device moves to another coordinator', () => {
    const { registry, policy } = setUp()
    registry.patchThing('lamp-2', { coordinator: 'hub-1' })
    expect(policy.authorizePublish(hub1, '$aws/things/lamp-2/shadow/update').allowed).toBe(true)
    registry.patchThing('lamp-1', { coordinator: 'hub-2' })
    expect(policy.authorizeSubscribe(hub1, '$aws/things/lamp-1/shadow/#').allowed).toBe(false)
  })

  it('should give the broker an identity only for provisioned coordinators', () => {
    const { registry, credentials } = setUp()
    expect(coordinatorIdentity(registry, credentials, 'hub-1')).toBeUndefined()
    credentials.add({ name: 'hub-1', certFingerprint: 'AA:BB', tokenHash: null, createdAt: 1 })
    expect(coordinatorIdentity(registry, credentials, 'hub-1')).toMatchObject({ name: 'hub-1', certFingerprint: 'AA:BB', policies: ['devices-of:hub-1'] })
    expect(coordinatorIdentity(registry, credentials, 'lamp-1')).toBeUndefined()
  })
})
