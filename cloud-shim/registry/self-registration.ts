/**
 * Coordinators report about themselves by publishing to `cloud/{name}/register`:
 *
 *   { "attributes": { "memoryMb": "2048", "old": null }, "addTags": ["gpio"], "removeTags": ["camera"],
 *     "devices": [ { "name": "lamp-1", "attributes": { "room": "kitchen" } } ],
 *     "clientToken": "optional, echoed" }
 *
 * What a coordinator says goes into the thing's `reported` section (attributes merge, null removes a
 * key; tags are added and removed), never into the attributes and tags the operator set: group
 * queries see reports only as `reported.attributes.<key>` and `reported.tags`, so a coordinator
 * cannot move itself into a group whose query the operator wrote on operator fields. `devices`
 * confirms devices the operator registered under this coordinator (and reports about them); a
 * device that is unknown, unassigned or another coordinator's is refused, so no coordinator can
 * claim its way to a device's shadows. The answer goes to `cloud/{name}/register/accepted` or
 * `.../rejected`. Because the topic carries the name and the broker lets a coordinator publish
 * only under its own `cloud/{name}/`, a coordinator can report on nothing but itself and its devices.
 */
import { z } from 'zod'
import type { LocalBus } from '../../coordinator/broker/index.js'
import { hasCode } from '../../coordinator/core/errors.js'
import { K, type Logger } from '../../coordinator/core/log.js'
import type { Registry } from './registry.js'
import type { Thing, ThingPatch } from './types.js'

export const REGISTER_FILTER = 'cloud/+/register'

const patchFields = {
  attributes: z.record(z.string(), z.string().nullable()).optional(),
  addTags: z.array(z.string()).optional(),
  removeTags: z.array(z.string()).optional(),
}
const registration = z.object({
  ...patchFields,
  devices: z.array(z.object({ name: z.string(), ...patchFields }).strict()).max(1000).optional(),
  clientToken: z.string().max(64).optional(),
}).strict()

type Registration = z.infer<typeof registration>

interface Refusal {
  name: string
  reason: string
}

/** Subscribes the handler; returns its unsubscribe function. */
export function serveSelfRegistration(bus: LocalBus, registry: Registry, log: Logger): Promise<() => Promise<void>> {
  return bus.subscribe(REGISTER_FILTER, (topic, payload) => {
    const name = topic.split('/')[1] ?? ''
    const reply = (status: 'accepted' | 'rejected', body: unknown): void => {
      bus.publish(`cloud/${name}/register/${status}`, JSON.stringify(body), 1).catch((err: Error) => {
        log.error({ [K.thingName]: name, [K.err]: err.message }, 'failed to answer a registration')
      })
    }
    const outcome = registerSafely(registry, name, payload, log)
    if ('error' in outcome) {
      log.warn({ [K.thingName]: name, reason: outcome.error.message }, 'registration refused')
      reply('rejected', { ...outcome.error, ...token(outcome.clientToken) })
    } else {
      reply('accepted', outcome)
    }
  })
}

type Outcome =
  | { thing: Thing; devices: string[]; refused: Refusal[]; clientToken?: string }
  | { error: { code: number; message: string }; clientToken?: string }

const token = (t: string | undefined): { clientToken?: string } => (t === undefined ? {} : { clientToken: t })

/** A failure here must not reach the broker's delivery path: it is answered 500 and logged. */
function registerSafely(registry: Registry, name: string, payload: Buffer, log: Logger): Outcome {
  try {
    return register(registry, name, payload)
  } catch (err) {
    log.error({ [K.thingName]: name, [K.err]: (err as Error).message }, 'registration failed')
    return { error: { code: 500, message: 'Internal service failure' } }
  }
}

function parseRegistration(payload: Buffer): Registration | string {
  let json: unknown
  try {
    json = JSON.parse(payload.toString('utf8'))
  } catch (err) {
    return `not JSON: ${(err as Error).message}`
  }
  const parsed = registration.safeParse(json)
  if (parsed.success) return parsed.data
  return parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
}

function register(registry: Registry, name: string, payload: Buffer): Outcome {
  const message = parseRegistration(payload)
  if (typeof message === 'string') return { error: { code: 400, message: `registration is not valid: ${message}` } }
  const own = registry.getThing(name)
  if (own?.kind !== 'coordinator') return { error: { code: 404, message: `coordinator ${JSON.stringify(name)} is not registered` }, ...token(message.clientToken) }
  try {
    const thing = registry.reportThing(name, patchOf(message))
    const claims = (message.devices ?? []).map((d) => claimDevice(registry, name, d))
    const refused = claims.filter((c): c is Refusal => c !== null)
    const devices = (message.devices ?? []).map((d) => d.name).filter((d) => !refused.some((r) => r.name === d))
    return { thing, devices, refused, ...token(message.clientToken) }
  } catch (err) {
    if (!hasCode(err, 'COORD_INVALID_ARG')) throw err
    return { error: { code: 400, message: (err as Error).message }, ...token(message.clientToken) }
  }
}

const patchOf = (p: Omit<ThingPatch, 'coordinator'>): Omit<ThingPatch, 'coordinator'> => ({
  ...(p.attributes === undefined ? {} : { attributes: p.attributes }),
  ...(p.addTags === undefined ? {} : { addTags: p.addTags }),
  ...(p.removeTags === undefined ? {} : { removeTags: p.removeTags }),
})

/** Null when the device is this coordinator's (its report merged), else why not. */
function claimDevice(registry: Registry, coordinator: string, device: { name: string } & Omit<ThingPatch, 'coordinator'>): Refusal | null {
  const existing = registry.getThing(device.name)
  if (existing === undefined) return { name: device.name, reason: 'it is not registered (the operator registers devices under their coordinator)' }
  if (existing.kind === 'coordinator') return { name: device.name, reason: 'it is a coordinator' }
  if (existing.coordinator === null) return { name: device.name, reason: 'it is not registered under any coordinator' }
  if (existing.coordinator !== coordinator) return { name: device.name, reason: `it belongs to coordinator ${JSON.stringify(existing.coordinator)}` }
  try {
    registry.reportThing(device.name, patchOf(device))
    return null
  } catch (err) {
    if (!hasCode(err, 'COORD_INVALID_ARG')) throw err
    return { name: device.name, reason: (err as Error).message }
  }
}
