/**
 * The registry's records and the validation of what callers send. Names follow AWS IoT thing
 * names (the protocol's isValidThingName), so a thing name is always safe inside an MQTT topic.
 */
import { InvalidArgumentError } from '../../coordinator/core/errors.js'
import { isValidThingName } from '../../coordinator/protocol/index.js'

export type ThingKind = 'coordinator' | 'device'

export interface Thing {
  name: string
  kind: ThingKind
  /** Free-form string attributes (site, memoryMb, ...), usable in group queries. */
  attributes: Record<string, string>
  /** Capability tags (gpio, camera, arch=arm64, ...), sorted and unique. */
  tags: string[]
  /** For a device: the coordinator that serves it (and syncs its shadows); null otherwise. */
  coordinator: string | null
  /** What the thing's coordinator says about it (see Reported); never the operator's fields. */
  reported: Reported
  /** Bumped on every change; lets readers in other processes see that a thing changed. */
  revision: number
  createdAt: number
  updatedAt: number
}

/**
 * Attributes and tags a coordinator reports about itself or its devices (`cloud/{name}/register`).
 * Kept apart from the operator's `attributes` and `tags`, so a coordinator cannot move itself into
 * a group the operator defined: group queries see them only as `reported.attributes.<key>` and
 * `reported.tags`, i.e. only where the operator wrote that.
 */
export interface Reported {
  attributes: Record<string, string>
  tags: string[]
}

export const EMPTY_REPORTED: Reported = Object.freeze({ attributes: Object.freeze({}), tags: Object.freeze([]) }) as unknown as Reported

/** A whole thing as a caller defines it (create or replace). */
export interface ThingInput {
  name: string
  kind: ThingKind
  attributes?: Record<string, string>
  tags?: string[]
  coordinator?: string | null
}

/** A partial change: attributes merged (null removes a key), tags added and removed. */
export interface ThingPatch {
  attributes?: Record<string, string | null>
  addTags?: string[]
  removeTags?: string[]
  /** Devices only: move the device to another coordinator (null: to none). */
  coordinator?: string | null
}

export type GroupKind = 'static' | 'dynamic'

export interface Group {
  name: string
  kind: GroupKind
  /** The query text of a dynamic group; null for a static group. */
  query: string | null
  createdAt: number
  updatedAt: number
}

/** How a group is defined: explicit members, or a query its members match. */
export type GroupDefinition = { kind: 'static'; members: string[] } | { kind: 'dynamic'; query: string }

/** AWS IoT allows 50 attributes per thing; tags get the same room. */
export const MAX_ATTRIBUTES = 50
export const MAX_TAGS = 50
const MAX_VALUE_LENGTH = 800
const ATTRIBUTE_KEY = /^[A-Za-z0-9_.:-]{1,128}$/
const TAG = /^[A-Za-z0-9_.:=/+@-]{1,128}$/

const quote = (s: unknown): string => JSON.stringify(s)

export function checkName(name: unknown, what: 'thing' | 'group' | 'coordinator'): string {
  if (typeof name !== 'string' || !isValidThingName(name)) {
    throw new InvalidArgumentError(`${what} name ${quote(name)} is invalid: expected 1-128 characters of a-z A-Z 0-9 : _ -`)
  }
  return name
}

export function checkKind(kind: unknown): ThingKind {
  if (kind === 'coordinator' || kind === 'device') return kind
  throw new InvalidArgumentError(`thing kind ${quote(kind)} is invalid: expected "coordinator" or "device"`)
}

export function checkAttribute(key: string, value: unknown): void {
  if (!ATTRIBUTE_KEY.test(key) || key === '__proto__') throw new InvalidArgumentError(`attribute key ${quote(key)} is invalid: expected 1-128 characters of a-z A-Z 0-9 . : _ -`)
  if (typeof value !== 'string' || value.length > MAX_VALUE_LENGTH) {
    throw new InvalidArgumentError(`attribute ${quote(key)} must be a string of at most ${MAX_VALUE_LENGTH} characters`)
  }
}

export function checkTag(tag: unknown): string {
  if (typeof tag !== 'string' || !TAG.test(tag)) {
    throw new InvalidArgumentError(`tag ${quote(tag)} is invalid: expected 1-128 characters of a-z A-Z 0-9 _ . : = / + @ -`)
  }
  return tag
}

/** Validated, with tags sorted and de-duplicated so equal sets compare equal. */
export function normalizeAttributesAndTags(attributes: Record<string, string>, tags: readonly string[]): { attributes: Record<string, string>; tags: string[] } {
  const entries = Object.entries(attributes)
  if (entries.length > MAX_ATTRIBUTES) throw new InvalidArgumentError(`a thing may have at most ${MAX_ATTRIBUTES} attributes`)
  for (const [key, value] of entries) checkAttribute(key, value)
  const unique = [...new Set(tags.map(checkTag))].sort()
  if (unique.length > MAX_TAGS) throw new InvalidArgumentError(`a thing may have at most ${MAX_TAGS} tags`)
  return { attributes: Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), tags: unique }
}

/** The attributes and tags of `thing` after `patch`. */
export function applyPatch(thing: Pick<Thing, 'attributes' | 'tags'>, patch: ThingPatch): { attributes: Record<string, string>; tags: string[] } {
  // A Map, not object assignment: a '__proto__' key must reach validation, not the prototype.
  const attributes = new Map(Object.entries(thing.attributes))
  for (const [key, value] of Object.entries(patch.attributes ?? {})) {
    if (value === null) attributes.delete(key)
    else attributes.set(key, value)
  }
  const removed = new Set(patch.removeTags ?? [])
  const tags = [...thing.tags.filter((t) => !removed.has(t)), ...(patch.addTags ?? [])]
  return normalizeAttributesAndTags(Object.fromEntries(attributes), tags)
}
