/**
 * Wills are published by the broker on behalf of a client that is gone, possibly after a crash and
 * restart, when aedes hands them over with no client at all. So a will carries its owner: who left
 * it and with which policies, recorded at CONNECT (where the will topic is authorized as that
 * client) and stored with the will. Before a restored will is published it is authorized again,
 * both as the owner was and as the owner is now; a will whose owner is gone is dropped.
 */
import type { Identity } from './identity.js'
import type { Principal } from './policy.js'

/** The field of a will packet that holds its owner; the broker persistence stores it with the will. */
export const WILL_OWNER_FIELD = 'owner'

/** What is stored with a will: the owner's identity and its policies at CONNECT. */
export interface WillOwner {
  thingName: string
  method: Identity['method']
  credential: string | null
  attributes: Record<string, string>
  policies: string[]
}

export function willOwnerOf(identity: Identity): WillOwner {
  const { principal, method, credential } = identity
  return { thingName: principal.thingName, method, credential, attributes: { ...principal.attributes }, policies: [...principal.policies] }
}

const METHODS: ReadonlySet<string> = new Set<Identity['method']>(['certificate', 'token', 'anonymous-loopback'])

const isStringRecord = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')

/** The owner stored with a will, or undefined when it has none that can be trusted (e.g. one left by an older version). */
export function storedWillOwner(will: object): Identity | undefined {
  const owner: unknown = (will as Record<string, unknown>)[WILL_OWNER_FIELD]
  if (typeof owner !== 'object' || owner === null) return undefined
  const o = owner as Partial<Record<keyof WillOwner, unknown>>
  if (typeof o.thingName !== 'string' || typeof o.method !== 'string' || !METHODS.has(o.method)) return undefined
  if (o.credential !== null && typeof o.credential !== 'string') return undefined
  if (!isStringRecord(o.attributes) || !Array.isArray(o.policies) || !o.policies.every((p) => typeof p === 'string')) return undefined
  const principal: Principal = { thingName: o.thingName, attributes: { ...o.attributes }, policies: [...o.policies] }
  return { principal, method: o.method as Identity['method'], credential: o.credential }
}
