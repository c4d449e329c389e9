/**
 * The sync merge rule (README.md, "The merge rule"): pure functions, no I/O.
 *
 * A shadow's state is compared with the state both sides agreed on at the last sync (the base),
 * field by field: a field changed on one side only takes that side's value; a field changed on
 * both takes its owner's value (`desired` belongs to the cloud, `reported` to the coordinator).
 * ShadowManager's rule (reference §4.3), written down so nobody has to read source to learn it.
 */
import type { JsonObject, JsonValue, ShadowState } from '../protocol/index.js'

export type SyncDirection = 'both' | 'to-cloud' | 'from-cloud'

/** Which side's value wins a field changed on both sides. */
export type Owner = 'local' | 'cloud'

/** The owner of each section: the cloud asks (desired), the devices answer (reported). */
export const SECTION_OWNERS = { desired: 'cloud', reported: 'local' } as const satisfies Record<keyof ShadowState, Owner>

const SECTIONS = ['desired', 'reported'] as const

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Deep equality; arrays are compared element by element, numbers by value. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]))
  if (!isJsonObject(a) || !isJsonObject(b)) return a === b
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
}

/** A document never stores null (it means "delete" in a request), so null and absent are one. */
const present = (v: JsonValue | undefined): JsonValue | undefined => (v === null ? undefined : v)

function child(o: JsonValue | undefined, key: string): JsonValue | undefined {
  return isJsonObject(o) && Object.hasOwn(o, key) ? present(o[key]) : undefined
}

const objectOrAbsent = (v: JsonValue | undefined): boolean => v === undefined || isJsonObject(v)

/**
 * Objects are merged key by key when both sides hold an object or nothing. An absent side counts
 * as "all keys removed" only if the base was an object too; if the base was a scalar, the absent
 * side changed the field as a whole and the leaf rule decides.
 */
function mergesPerKey(base: JsonValue | undefined, local: JsonValue | undefined, cloud: JsonValue | undefined): boolean {
  if (!objectOrAbsent(local) || !objectOrAbsent(cloud)) return false
  if (!isJsonObject(local) && !isJsonObject(cloud)) return false
  return objectOrAbsent(base) || (isJsonObject(local) && isJsonObject(cloud))
}

function mergeLeaf(base: JsonValue | undefined, local: JsonValue | undefined, cloud: JsonValue | undefined, owner: Owner): JsonValue | undefined {
  const localChanged = !jsonEqual(local, base)
  const cloudChanged = !jsonEqual(cloud, base)
  if (!localChanged) return cloud
  if (!cloudChanged) return local
  return owner === 'local' ? local : cloud
}

/** The merged value of one node; undefined when the key is absent from the result. */
export function mergeNode(base: JsonValue | undefined, local: JsonValue | undefined, cloud: JsonValue | undefined, owner: Owner): JsonValue | undefined {
  const [b, l, c] = [present(base), present(local), present(cloud)]
  if (!mergesPerKey(b, l, c)) return structuredClone(mergeLeaf(b, l, c, owner))
  const out: JsonObject = {}
  // Keys only in the base were removed on both sides: they cannot be in the result.
  const keys = new Set([...Object.keys(isJsonObject(l) ? l : {}), ...Object.keys(isJsonObject(c) ? c : {})])
  for (const key of keys) {
    const merged = mergeNode(child(b, key), child(l, key), child(c, key), owner)
    if (merged !== undefined) Object.defineProperty(out, key, { value: merged, writable: true, enumerable: true, configurable: true })
  }
  // A shadow cannot hold an empty object ({} in a request deletes), so an emptied object goes too.
  return Object.keys(out).length === 0 ? undefined : out
}

/** The 3-way merge of two live documents' states against the base (an empty base: first sync). */
export function mergeStates(base: ShadowState | null, local: ShadowState, cloud: ShadowState): ShadowState {
  const out: ShadowState = {}
  for (const section of SECTIONS) {
    const merged = mergeNode(base?.[section], local[section], cloud[section], SECTION_OWNERS[section])
    if (isJsonObject(merged)) out[section] = merged
  }
  return out
}

/**
 * Whole documents, deletes included; null means "no document" (never existed, or deleted).
 * - Deleted on one side, unchanged on the other since the last sync: deleted on both.
 * - Deleted on one side, changed (or created) on the other: the change wins and the document is
 *   recreated as the changed side has it. A delete is one event, not a field, so it does not merge.
 * - One direction: the source side's document is copied over the other, whatever changed.
 */
export function resolveDocument(direction: SyncDirection, base: ShadowState | null, local: ShadowState | null, cloud: ShadowState | null): ShadowState | null {
  if (direction === 'to-cloud') return local
  if (direction === 'from-cloud') return cloud
  if (local === null && cloud === null) return null
  if (local === null) return base !== null && statesEqual(cloud, base) ? null : cloud
  if (cloud === null) return base !== null && statesEqual(local, base) ? null : local
  return mergeStates(base, local, cloud)
}

export function statesEqual(a: ShadowState | null, b: ShadowState | null): boolean {
  if (a === null || b === null) return a === b
  return SECTIONS.every((s) => jsonEqual(a[s], b[s]))
}

/**
 * The update request state that turns `from` into `to`: changed leaves with their new value,
 * removed keys as null, arrays whole. Undefined when nothing differs.
 */
export function diffNode(from: JsonValue | undefined, to: JsonValue | undefined): JsonValue | undefined {
  const [f, t] = [present(from), present(to)]
  if (t === undefined) return f === undefined ? undefined : null
  if (!isJsonObject(t) || !isJsonObject(f)) return jsonEqual(f, t) ? undefined : structuredClone(t)
  const out: JsonObject = {}
  for (const key of new Set([...Object.keys(f), ...Object.keys(t)])) {
    const d = diffNode(child(f, key), child(t, key))
    if (d !== undefined) Object.defineProperty(out, key, { value: d, writable: true, enumerable: true, configurable: true })
  }
  return Object.keys(out).length === 0 ? undefined : out
}

/** The `state` of an update request that makes a document holding `from` hold `to`. */
export function statePatch(from: ShadowState | null, to: ShadowState): { desired?: JsonObject | null; reported?: JsonObject | null } {
  const patch: { desired?: JsonObject | null; reported?: JsonObject | null } = {}
  for (const section of SECTIONS) {
    const d = diffNode(from?.[section], to[section])
    if (d === null || isJsonObject(d)) patch[section] = d
  }
  return patch
}

/** Only the sections of a get reply or document: `delta` and anything else are not state. */
export function stateOf(body: unknown): ShadowState {
  const state = isJsonObject(body) ? body['state'] : undefined
  const out: ShadowState = {}
  for (const section of SECTIONS) {
    const v = isJsonObject(state) ? state[section] : undefined
    if (isJsonObject(v) && Object.keys(v).length > 0) out[section] = v
  }
  return out
}
