/**
 * AWS IoT Device Shadow topic names (reference §1.1): pure string parsing and building.
 *
 * Grammar: `$aws/things/{thing}/shadow[/name/{shadow}]/{operation}[/{status}]`.
 * The classic prefix has one or two segments after `shadow` and the named prefix has three or four
 * starting with `name`, and `name` is not an operation, so every topic has at most one reading.
 */

export type ShadowOperation = 'update' | 'get' | 'delete'
export type ShadowReplyStatus = 'accepted' | 'rejected' | 'delta' | 'documents'

/** `shadowName` undefined (or empty) means the classic, unnamed shadow. */
export interface ShadowRef {
  thingName: string
  shadowName?: string
}

export type ParsedShadowTopic =
  | { kind: 'request'; ref: ShadowRef; operation: ShadowOperation }
  | { kind: 'reply'; ref: ShadowRef; operation: ShadowOperation; status: ShadowReplyStatus }

/** A request topic read without validating the names, so a 400 can be sent back on them. */
export interface LooseShadowRequest {
  thingName: string
  shadowName?: string
  operation: ShadowOperation
}

/** Thing names per the IoT data-plane API: 1-128 of `[a-zA-Z0-9:_-]`. */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/
/** Shadow names per the IoT data-plane API, which (unlike ShadowManager) allows `$`. */
export const SHADOW_NAME_PATTERN = /^[$a-zA-Z0-9:_-]{1,64}$/

export const SHADOW_OPERATIONS: readonly ShadowOperation[] = ['update', 'get', 'delete']

/** Reply statuses each operation can produce: only update has delta and documents. */
export const SHADOW_REPLY_STATUSES: Readonly<Record<ShadowOperation, readonly ShadowReplyStatus[]>> = {
  update: ['accepted', 'rejected', 'delta', 'documents'],
  get: ['accepted', 'rejected'],
  delete: ['accepted', 'rejected'],
}

/** Every shadow topic of every thing; what ShadowManager itself subscribes to. */
export const SHADOW_TOPIC_FILTER = '$aws/things/+/shadow/#'

export function isValidThingName(s: string): boolean {
  return THING_NAME_PATTERN.test(s)
}

export function isValidShadowName(s: string): boolean {
  return SHADOW_NAME_PATTERN.test(s)
}

export function isShadowOperation(s: string | undefined): s is ShadowOperation {
  return s === 'update' || s === 'get' || s === 'delete'
}

export function isReplyStatusOf(op: ShadowOperation, status: string | undefined): status is ShadowReplyStatus {
  return (SHADOW_REPLY_STATUSES[op] as readonly string[]).includes(status ?? '')
}

/** Classic when no shadow name is given; an empty name is treated the same (ShadowManager's `""`). */
export function isClassicShadow(ref: ShadowRef): boolean {
  return ref.shadowName === undefined || ref.shadowName === ''
}

export function shadowTopicPrefix(ref: ShadowRef): string {
  const base = `$aws/things/${ref.thingName}/shadow`
  return isClassicShadow(ref) ? base : `${base}/name/${ref.shadowName}`
}

/**
 * Builds a request topic (no status) or a reply topic. Names are used raw, so a 400 reply can go to
 * a topic whose name is invalid; an impossible operation/status pair is a programming error.
 */
export function shadowTopic(ref: ShadowRef, op: ShadowOperation, status?: ShadowReplyStatus): string {
  const base = `${shadowTopicPrefix(ref)}/${op}`
  if (status === undefined) return base
  if (!isReplyStatusOf(op, status)) throw new RangeError(`a shadow ${op} has no '${status}' reply`)
  return `${base}/${status}`
}

interface TopicParts {
  thingName: string
  shadowName?: string
  /** Segments after the prefix: [operation] or [operation, status] when well formed. */
  tail: string[]
}

function splitShadowTopic(topic: string): TopicParts | null {
  const parts = topic.split('/')
  const thingName = parts[2]
  if (parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'shadow' || !thingName) return null
  if (parts[4] !== 'name') return { thingName, tail: parts.slice(4) }
  const shadowName = parts[5]
  if (!shadowName) return null
  return { thingName, shadowName, tail: parts.slice(6) }
}

function refOf(parts: TopicParts): ShadowRef {
  return parts.shadowName === undefined
    ? { thingName: parts.thingName }
    : { thingName: parts.thingName, shadowName: parts.shadowName }
}

export function parseShadowRequestTopicLoose(topic: string): LooseShadowRequest | null {
  const parts = splitShadowTopic(topic)
  const operation = parts?.tail[0]
  if (!parts || parts.tail.length !== 1 || !isShadowOperation(operation)) return null
  return { ...refOf(parts), operation }
}

function hasValidNames(parts: TopicParts): boolean {
  return isValidThingName(parts.thingName) && (parts.shadowName === undefined || isValidShadowName(parts.shadowName))
}

/** Null for anything that is not a well-formed shadow topic with valid names. */
export function parseShadowTopic(topic: string): ParsedShadowTopic | null {
  const parts = splitShadowTopic(topic)
  if (!parts || !hasValidNames(parts)) return null
  const [operation, status, ...extra] = parts.tail
  if (!isShadowOperation(operation) || extra.length > 0) return null
  if (status === undefined) return { kind: 'request', ref: refOf(parts), operation }
  if (!isReplyStatusOf(operation, status)) return null
  return { kind: 'reply', ref: refOf(parts), operation, status }
}
