/**
 * The AWS IoT Device Shadow document engine: request parsing, validation, merge, metadata, delta,
 * versions and the exact reply bodies (reference §1.2-§1.8, §5). Pure: no I/O, no clock; the
 * caller passes the time in epoch seconds. Inputs are never mutated and results share no objects
 * with them.
 */
import { isClassicShadow, isValidShadowName, isValidThingName, type ShadowRef } from './shadow-topics.js'

export type JsonObject = { [k: string]: JsonValue }
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject

export interface ShadowLimits {
  /** UTF-8 bytes of the desired JSON plus the reported JSON; metadata is not counted. */
  maxStateBytes: number
  /** Container nesting inside desired/reported; the section object itself is level 1. */
  maxDepth: number
  maxClientTokenBytes: number
  /**
   * UTF-8 bytes of the stored metadata JSON (desired and reported). Not an AWS limit: AWS does not
   * count metadata, but a document stores it, and an array of small numbers grows 12x in it (an
   * 8 KB array keeps ~110 KB of timestamps). Absent: METADATA_BYTES_PER_STATE_BYTE x maxStateBytes.
   */
  maxMetadataBytes?: number
}

/**
 * Metadata of a document made only of objects is at most ~5.2x its state ({"a":1} becomes
 * {"a":{"timestamp":…}}), so 8x admits every such document at the size limit and refuses only
 * long arrays of small values.
 */
export const METADATA_BYTES_PER_STATE_BYTE = 8

export function metadataBytesLimit(limits: ShadowLimits): number {
  return limits.maxMetadataBytes ?? METADATA_BYTES_PER_STATE_BYTE * limits.maxStateBytes
}

export const DEFAULT_SHADOW_LIMITS: ShadowLimits = Object.freeze({ maxStateBytes: 8192, maxDepth: 6, maxClientTokenBytes: 64 })

export interface ShadowState {
  desired?: JsonObject
  reported?: JsonObject
}

export interface ShadowMetadata {
  desired?: JsonObject
  reported?: JsonObject
}

/** The stored, live document. */
export interface ShadowDocument {
  state: ShadowState
  metadata: ShadowMetadata
  version: number
}

export interface ShadowError {
  code: number
  message: string
}

/** For callers that prefer throwing; carries what a rejected reply needs. */
export class ShadowRequestError extends Error {
  readonly code: number
  /** Declared, not initialised, so the property is absent (not undefined) without a token. */
  declare readonly clientToken?: string

  constructor(error: ShadowError, clientToken?: string) {
    super(error.message)
    this.name = 'ShadowRequestError'
    this.code = error.code
    if (clientToken !== undefined) this.clientToken = clientToken
  }

  toShadowError(): ShadowError {
    return { code: this.code, message: this.message }
  }
}

export interface UpdateRequest {
  state: { desired?: JsonObject | null; reported?: JsonObject | null } | null
  clientToken?: string
  version?: number
}

export interface GetOrDeleteRequest {
  clientToken?: string
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: ShadowError; clientToken?: string }

export type UpdateOutcome =
  | { ok: true; document: ShadowDocument; accepted: JsonObject; delta: JsonObject | null; documents: JsonObject }
  | { ok: false; error: ShadowError }

type Section = 'desired' | 'reported'
const SECTIONS: readonly Section[] = ['desired', 'reported']

// ---------------------------------------------------------------------------------------------
// Errors. Texts are IoT Core's (§1.7), including its "documented" typo; factories return fresh objects.

const shadowError = (code: number, message: string): ShadowError => ({ code, message })

export const ShadowErrors = {
  invalidJson: () => shadowError(400, 'Invalid JSON'),
  payloadNotObject: () => shadowError(400, 'Invalid JSON: the payload must be a JSON object'),
  missingState: () => shadowError(400, 'Missing required node: state'),
  stateNotObject: () => shadowError(400, 'State node must be an object'),
  sectionNotObject: (s: Section) => shadowError(400, `${s === 'desired' ? 'Desired' : 'Reported'} node must be an object`),
  invalidStateNode: (key: string) => shadowError(400, `State contains an invalid node: '${key}'`),
  invalidClientToken: () => shadowError(400, 'Invalid clientToken'),
  invalidVersion: () => shadowError(400, 'Invalid version'),
  tooDeep: (max: number) => shadowError(400, `JSON contains too many levels of nesting; maximum is ${max}`),
  nullInArray: () => shadowError(400, 'Invalid JSON: arrays may not contain null values'),
  invalidThingName: () => shadowError(400, 'Invalid thing name'),
  invalidShadowName: () => shadowError(400, 'Invalid shadow name'),
  unauthorized: () => shadowError(401, 'Unauthorized'),
  forbidden: () => shadowError(403, 'Forbidden'),
  versionConflict: () => shadowError(409, 'Version conflict'),
  payloadTooLarge: () => shadowError(413, 'The payload exceeds the maximum size allowed'),
  /** Not an IoT Core error (it has no cap): worded like its nesting limit, with its 400 for a refused request. */
  tooManyNamedShadows: (max: number) => shadowError(400, `Too many named shadows for this thing; maximum is ${max}`),
  unsupportedEncoding: () => shadowError(415, 'Unsupported documented encoding; supported encoding is UTF-8'),
  tooManyRequests: () => shadowError(429, 'Too Many Requests'),
  internal: () => shadowError(500, 'Internal service failure'),
} as const

/** IoT Core names the thing for a classic shadow and the shadow otherwise, in single quotes. */
export function notFoundError(ref: ShadowRef): ShadowError {
  const name = isClassicShadow(ref) ? ref.thingName : ref.shadowName
  return shadowError(404, `No shadow exists with name: '${name}'`)
}

/** The 400 to answer a request whose topic names are invalid, or null when both are valid. */
export function validateShadowRef(ref: ShadowRef): ShadowError | null {
  if (!isValidThingName(ref.thingName)) return ShadowErrors.invalidThingName()
  if (!isClassicShadow(ref) && !isValidShadowName(ref.shadowName ?? '')) return ShadowErrors.invalidShadowName()
  return null
}

// ---------------------------------------------------------------------------------------------
// JSON helpers. Keys such as `__proto__` or `constructor` are plain data here: reads check own
// properties and writes define them, so a device cannot reach or replace Object.prototype.

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function own(o: object, key: string): unknown {
  return Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined
}

function ownJson(o: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(o, key) ? o[key] : undefined
}

function put(o: JsonObject, key: string, value: JsonValue): void {
  // `__proto__` is the only accessor on Object.prototype; any other key assigns as plain data,
  // and assignment is several times cheaper than defineProperty on this per-key path.
  if (key === '__proto__') Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true })
  else o[key] = value
}

/** A deep copy of JSON data; cheaper than structuredClone for the small values shadows hold. */
function cloneJson<T extends JsonValue>(value: T): T {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T
  const out: JsonObject = {}
  for (const key in value) put(out, key, cloneJson(value[key] as JsonValue))
  return out as T
}

function isEmptyObject(v: JsonObject): boolean {
  return Object.keys(v).length === 0
}

function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i] as JsonValue))
  if (!isObject(a) || !isObject(b)) return a === b
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] as JsonValue, b[k] as JsonValue))
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

function withClientToken(body: JsonObject, clientToken: string | undefined): JsonObject {
  if (clientToken !== undefined) body.clientToken = clientToken
  return body
}

// ---------------------------------------------------------------------------------------------
// Payload decoding.

const utf8 = new TextDecoder('utf-8', { fatal: true })

function decodeText(payload: Uint8Array): Parsed<string> {
  try {
    return { ok: true, value: utf8.decode(payload) }
  } catch {
    return { ok: false, error: ShadowErrors.unsupportedEncoding() }
  }
}

function parseObject(text: string): Parsed<Record<string, unknown>> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, error: ShadowErrors.invalidJson() }
  }
  return isObject(value) ? { ok: true, value } : { ok: false, error: ShadowErrors.payloadNotObject() }
}

function decodeObject(payload: Uint8Array): Parsed<Record<string, unknown>> {
  const text = decodeText(payload)
  return text.ok ? parseObject(text.value) : text
}

function isValidClientToken(token: unknown, limits: ShadowLimits): token is string {
  return typeof token === 'string' && utf8Bytes(token) <= limits.maxClientTokenBytes
}

function isValidVersion(version: unknown): version is number {
  return typeof version === 'number' && Number.isSafeInteger(version) && version >= 0
}

// ---------------------------------------------------------------------------------------------
// Update validation, in the order of reference §5.3.

/** Steps 1-4: the shape of `state` and its sections. */
function checkStateNode(state: unknown): ShadowError | null {
  if (state === undefined) return ShadowErrors.missingState()
  if (state === null) return null
  if (!isObject(state)) return ShadowErrors.stateNotObject()
  for (const section of SECTIONS) {
    const value = own(state, section)
    if (value !== undefined && value !== null && !isObject(value)) return ShadowErrors.sectionNotObject(section)
  }
  const unknownKey = Object.keys(state).find((k) => k !== 'desired' && k !== 'reported')
  return unknownKey === undefined ? null : ShadowErrors.invalidStateNode(unknownKey)
}

/**
 * Counts objects and arrays (ShadowManager's calculateDepth), not scalar leaves. It stops as soon as
 * the limit is passed, so hostile nesting cannot exhaust the stack.
 */
function exceedsDepth(node: unknown, level: number, max: number): boolean {
  if (typeof node !== 'object' || node === null) return false
  if (level > max) return true
  const children: unknown[] = Array.isArray(node) ? node : Object.values(node)
  return children.some((child) => exceedsDepth(child, level + 1, max))
}

/** Arrays are stored as atomic values, so a null in one would be stored rather than mean delete. */
function hasNullInArray(node: unknown, insideArray: boolean): boolean {
  if (node === null) return insideArray
  if (typeof node !== 'object') return false
  const children: unknown[] = Array.isArray(node) ? node : Object.values(node)
  const inArray = insideArray || Array.isArray(node)
  return children.some((child) => hasNullInArray(child, inArray))
}

/** Steps 7-8 on a state node that already passed checkStateNode. */
function checkStateContent(state: unknown, limits: ShadowLimits): ShadowError | null {
  if (!isObject(state)) return null
  const sections = SECTIONS.map((s) => own(state, s))
  if (sections.some((v) => exceedsDepth(v, 1, limits.maxDepth))) return ShadowErrors.tooDeep(limits.maxDepth)
  if (sections.some((v) => hasNullInArray(v, false))) return ShadowErrors.nullInArray()
  return null
}

function buildUpdateRequest(state: unknown, clientToken: string | undefined, version: unknown): UpdateRequest {
  const request: UpdateRequest = { state: null }
  if (isObject(state)) {
    request.state = {}
    // Request key order is kept: update/accepted echoes the state node as sent.
    for (const section of Object.keys(state) as Section[]) {
      const value = own(state, section) as JsonObject | null | undefined
      if (value !== undefined) request.state[section] = value
    }
  }
  if (clientToken !== undefined) request.clientToken = clientToken
  if (version !== undefined) request.version = version as number
  return request
}

/** The body's clientToken when it is a valid one: only a valid token is echoed in a rejection. */
function validTokenOf(body: object, limits: ShadowLimits): string | undefined {
  const token = own(body, 'clientToken')
  return isValidClientToken(token, limits) ? token : undefined
}

function failed<T>(error: ShadowError, clientToken: string | undefined): Parsed<T> {
  return clientToken === undefined ? { ok: false, error } : { ok: false, error, clientToken }
}

/** Validates a decoded update body (or a programmatic UpdateRequest) and keeps only known fields. */
function readUpdate(body: object, limits: ShadowLimits): Parsed<UpdateRequest> {
  const rawToken = own(body, 'clientToken')
  const clientToken = validTokenOf(body, limits)
  const fail = (error: ShadowError): Parsed<UpdateRequest> => failed(error, clientToken)
  const state = own(body, 'state')
  const stateError = checkStateNode(state)
  if (stateError) return fail(stateError)
  if (rawToken !== undefined && clientToken === undefined) return fail(ShadowErrors.invalidClientToken())
  const version = own(body, 'version')
  if (version !== undefined && !isValidVersion(version)) return fail(ShadowErrors.invalidVersion())
  const contentError = checkStateContent(state, limits)
  if (contentError) return fail(contentError)
  return { ok: true, value: buildUpdateRequest(state, clientToken, version) }
}

/**
 * Parses an `update` payload. Errors found after the clientToken could be read carry it, so the
 * rejected reply can echo it; an invalid token is never echoed. A state too large to fit any
 * merged document is a 413 before the §5.3 checks (so before a 400 or 409 it would also earn).
 */
export function parseUpdateRequest(payload: Uint8Array, limits: ShadowLimits): Parsed<UpdateRequest> {
  const body = decodeObject(payload)
  if (!body.ok) return body
  // A payload within the limit holds a state within it, but for number notation (1e20) that the
  // check on the merged state still catches: the walk is left to larger payloads.
  if (payload.byteLength > limits.maxStateBytes) {
    const bytes = requestStateBytes(own(body.value, 'state'), limits.maxDepth, limits.maxStateBytes)
    if (bytes !== null && bytes > limits.maxStateBytes) return failed(ShadowErrors.payloadTooLarge(), validTokenOf(body.value, limits))
  }
  return readUpdate(body.value, limits)
}

/**
 * Parses a `get` or `delete` payload: empty (or blank) is fine, and so is a JSON object whose
 * `version` and other fields are ignored (the JS v1 SDK sends `version` on both).
 */
export function parseGetOrDeleteRequest(payload: Uint8Array, limits: ShadowLimits): Parsed<GetOrDeleteRequest> {
  const text = decodeText(payload)
  if (!text.ok) return text
  if (text.value.trim() === '') return { ok: true, value: {} }
  const body = parseObject(text.value)
  if (!body.ok) return body
  const token = own(body.value, 'clientToken')
  if (token === undefined) return { ok: true, value: {} }
  if (!isValidClientToken(token, limits)) return { ok: false, error: ShadowErrors.invalidClientToken() }
  return { ok: true, value: { clientToken: token } }
}

// ---------------------------------------------------------------------------------------------
// Metadata.

/**
 * The metadata tree for a value, as ShadowManager's createMetadataPatch: scalars and nulls become
 * `{timestamp}`, arrays become arrays of per-element metadata, objects map key by key.
 */
function metadataFor(value: JsonValue, nowSec: number): JsonValue {
  if (Array.isArray(value)) return value.map((v) => metadataFor(v, nowSec))
  if (!isObject(value)) return { timestamp: nowSec }
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(value)) put(out, k, metadataFor(v, nowSec))
  return out
}

/** Delta metadata is the desired metadata at the delta's paths. */
export function computeDeltaMetadata(delta: JsonObject, desiredMetadata: JsonObject | undefined): JsonObject {
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(delta)) {
    const meta = desiredMetadata === undefined ? undefined : ownJson(desiredMetadata, k)
    if (meta === undefined) continue
    put(out, k, isObject(v) && isObject(meta) ? computeDeltaMetadata(v, meta) : cloneJson(meta))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Merge. Operates on private clones, so in-place edits never reach the caller's objects.

interface Merged {
  value: JsonValue
  meta: JsonValue
}

/** Null and `{}` both delete, as in ShadowManager (JsonUtil.isNullOrMissing). */
function isDeletion(patch: JsonValue): boolean {
  return patch === null || (isObject(patch) && isEmptyObject(patch))
}

/** Undefined means the key must be removed (deleted, or an object that ended up empty). */
function mergeValue(current: JsonValue | undefined, currentMeta: JsonValue | undefined, patch: JsonValue, nowSec: number): Merged | undefined {
  if (isDeletion(patch)) return undefined
  if (!isObject(patch)) return { value: cloneJson(patch), meta: metadataFor(patch, nowSec) }
  // A type change (scalar or array to object) starts from scratch, dropping the old leaf metadata.
  const value = isObject(current) ? current : {}
  const meta = isObject(current) && isObject(currentMeta) ? currentMeta : {}
  mergeObject(value, meta, patch, nowSec)
  return isEmptyObject(value) ? undefined : { value, meta }
}

function mergeObject(target: JsonObject, meta: JsonObject, patch: JsonObject, nowSec: number): void {
  for (const [key, patchValue] of Object.entries(patch)) {
    const merged = mergeValue(ownJson(target, key), ownJson(meta, key), patchValue, nowSec)
    if (merged === undefined) {
      delete target[key]
      delete meta[key]
    } else {
      put(target, key, merged.value)
      put(meta, key, merged.meta)
    }
  }
}

interface StateAndMetadata {
  state: ShadowState
  metadata: ShadowMetadata
}

function mergeSection(doc: StateAndMetadata, section: Section, patch: JsonObject | null | undefined, nowSec: number): void {
  if (patch === undefined) return
  const merged = patch === null ? undefined : mergeValue(doc.state[section], doc.metadata[section], patch, nowSec)
  if (merged && isObject(merged.value) && isObject(merged.meta)) {
    doc.state[section] = merged.value
    doc.metadata[section] = merged.meta
  } else {
    delete doc.state[section]
    delete doc.metadata[section]
  }
}

/** Empty or missing sections are not part of a document, in state or in metadata. */
function dropEmptySections(doc: StateAndMetadata): void {
  for (const section of SECTIONS) {
    const value = doc.state[section]
    if (value !== undefined && !isEmptyObject(value)) continue
    delete doc.state[section]
    delete doc.metadata[section]
  }
}

/** `owned`: the caller gives `current` up, so it is merged in place instead of into a copy. */
function mergeDocument(current: ShadowDocument | null, patch: UpdateRequest['state'], nowSec: number, version: number, owned: boolean): ShadowDocument {
  const doc: StateAndMetadata =
    current === null || patch === null
      ? { state: {}, metadata: {} }
      : owned
        ? { state: current.state, metadata: current.metadata }
        : { state: cloneJson(current.state as JsonObject), metadata: cloneJson(current.metadata as JsonObject) }
  if (patch !== null) {
    for (const section of SECTIONS) mergeSection(doc, section, patch[section], nowSec)
  }
  dropEmptySections(doc)
  return { state: doc.state, metadata: doc.metadata, version }
}

// ---------------------------------------------------------------------------------------------
// Delta (§1.5).

/** Undefined when the desired value is satisfied by the reported one. */
function diffValue(desired: JsonValue, reported: JsonValue | undefined): JsonValue | undefined {
  if (reported === undefined || reported === null) return cloneJson(desired)
  if (isObject(desired) && isObject(reported)) {
    const sub = diffObject(desired, reported)
    return isEmptyObject(sub) ? undefined : sub
  }
  // JSON numbers are all doubles here, so 1 and 1.0 already compare equal by value.
  return jsonEqual(desired, reported) ? undefined : cloneJson(desired)
}

function diffObject(desired: JsonObject, reported: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const [k, d] of Object.entries(desired)) {
    const diff = diffValue(d, ownJson(reported, k))
    if (diff !== undefined) put(out, k, diff)
  }
  return out
}

/** Every desired path whose reported value differs or is missing; keys only in reported never appear. */
export function computeDelta(desired: JsonObject | undefined, reported: JsonObject | undefined): JsonObject | null {
  if (desired === undefined) return null
  const delta = reported === undefined ? cloneJson(desired) : diffObject(desired, reported)
  return isEmptyObject(delta) ? null : delta
}

// ---------------------------------------------------------------------------------------------
// Size (§1.8): desired JSON plus reported JSON, as ShadowManager measures; metadata excluded.

export function stateBytes(state: ShadowState): number {
  let total = 0
  for (const section of SECTIONS) {
    const value = state[section]
    if (value !== undefined) total += utf8Bytes(JSON.stringify(value))
  }
  return total
}

/**
 * The JSON of a document's state (or metadata) object, and its size as stateBytes measures it:
 * the object's own braces, section names and commas are not counted. One serialization serves
 * both the size check and the caller that stores or sends the document.
 */
function sectionsJson(sections: ShadowState | ShadowMetadata): { json: string; bytes: number } {
  const json = JSON.stringify(sections)
  const present = SECTIONS.filter((section) => sections[section] !== undefined)
  // Braces, `"name":` per section, and the commas between sections.
  const framing = 2 + present.reduce((n, section) => n + section.length + 3, 0) + Math.max(0, present.length - 1)
  return { json, bytes: utf8Bytes(json) - framing }
}

/** Metadata JSON bytes of desired plus reported, measured like stateBytes (bounded by maxMetadataBytes). */
export function metadataBytes(metadata: ShadowMetadata): number {
  return stateBytes(metadata)
}

/** Marks a walk that went deeper than maxDepth. */
const TOO_DEEP = -1

/**
 * The fewest bytes the request's state can occupy in the merged document: its sections with the
 * deletions (null, {}) and the objects they leave empty pruned, measured as stateBytes measures.
 * The merged document keeps every remaining path with the same value, so when this is over
 * maxStateBytes the update cannot be accepted. The walk stops once past `stopAbove` (the result
 * is then only known to be larger), so a state of many keys costs no more than the limit's worth.
 * Null when the state nests deeper than `maxDepth` (validation answers that), so hostile nesting
 * is never walked further than the limit.
 */
export function requestStateBytes(state: unknown, maxDepth: number, stopAbove = Infinity): number | null {
  if (!isObject(state)) return 0
  let total = 0
  for (const section of SECTIONS) {
    const value = own(state, section)
    if (!isObject(value)) continue
    const bytes = prunedBytes(value, 1, maxDepth, stopAbove - total)
    if (bytes === TOO_DEEP) return null
    total += bytes
    if (total > stopAbove) break
  }
  return total
}

// The walks use for-in: parsed JSON has only own, enumerable, string keys (and Object.prototype
// none), and for-in avoids building an entries array per object.

/** JSON bytes of an object patch without its deletions; 0 when nothing is left of it. */
function prunedBytes(patch: JsonObject, level: number, max: number, budget: number): number {
  if (level > max) return TOO_DEEP
  let bytes = 1
  let kept = 0
  for (const key in patch) {
    const value = patch[key] as JsonValue
    if (isDeletion(value)) continue
    const n = isObject(value) ? prunedBytes(value, level + 1, max, budget - bytes) : valueBytes(value, level + 1, max, budget - bytes)
    if (n === TOO_DEEP) return TOO_DEEP
    if (n === 0) continue
    // The member, then a comma or the closing brace.
    bytes += jsonStringBytes(key) + 1 + n + 1
    kept++
    if (bytes > budget) return bytes
  }
  return kept === 0 ? 0 : bytes
}

/** JSON bytes of a value stored as sent (scalars, arrays and whatever is inside arrays). */
function valueBytes(value: JsonValue, level: number, max: number, budget: number): number {
  if (typeof value === 'string') return jsonStringBytes(value)
  if (typeof value !== 'object' || value === null) return String(value).length
  if (level > max) return TOO_DEEP
  let bytes = 1
  let members = 0
  if (Array.isArray(value)) {
    for (const item of value) {
      const n = valueBytes(item, level + 1, max, budget - bytes)
      if (n === TOO_DEEP) return TOO_DEEP
      bytes += n + 1
      members++
      if (bytes > budget) return bytes
    }
  } else {
    for (const key in value) {
      const n = valueBytes(value[key] as JsonValue, level + 1, max, budget - bytes)
      if (n === TOO_DEEP) return TOO_DEEP
      bytes += jsonStringBytes(key) + 1 + n + 1
      members++
      if (bytes > budget) return bytes
    }
  }
  // An empty container still has its closing bracket.
  return members === 0 ? 2 : bytes
}

/** Printable ASCII other than `"` and `\\`: JSON writes it as is, one byte a character. */
const PLAIN_JSON_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

function jsonStringBytes(s: string): number {
  return PLAIN_JSON_STRING.test(s) ? s.length + 2 : utf8Bytes(JSON.stringify(s))
}

// ---------------------------------------------------------------------------------------------
// Reply bodies.

function sectionsOf(source: ShadowState | ShadowMetadata): JsonObject {
  const out: JsonObject = {}
  for (const section of SECTIONS) {
    const value = source[section]
    if (value !== undefined) out[section] = cloneJson(value)
  }
  return out
}

/** A `previous`/`current` entry of update/documents: no delta, no timestamp. */
export function documentSnapshot(doc: ShadowDocument): JsonObject {
  return { state: sectionsOf(doc.state), metadata: sectionsOf(doc.metadata), version: doc.version }
}

/** get/accepted; `metadata.delta` is not sent by ShadowManager but is in AWS's examples. */
export function getAcceptedBody(doc: ShadowDocument, nowSec: number, clientToken?: string): JsonObject {
  const state = sectionsOf(doc.state)
  const metadata = sectionsOf(doc.metadata)
  const delta = computeDelta(doc.state.desired, doc.state.reported)
  if (delta !== null) {
    state.delta = delta
    metadata.delta = computeDeltaMetadata(delta, doc.metadata.desired)
  }
  return withClientToken({ state, metadata, version: doc.version, timestamp: nowSec }, clientToken)
}

export function deleteAcceptedBody(version: number, nowSec: number, clientToken?: string): JsonObject {
  return withClientToken({ version, timestamp: nowSec }, clientToken)
}

export function errorBody(err: ShadowError, nowSec: number, clientToken?: string): JsonObject {
  return withClientToken({ code: err.code, message: err.message, timestamp: nowSec }, clientToken)
}

/** update/accepted echoes the request's state (nulls included), not the merged document. */
function updateAcceptedBody(req: UpdateRequest, version: number, nowSec: number, owned: boolean): JsonObject {
  const state: JsonValue = req.state === null ? null : owned ? (req.state as JsonObject) : cloneJson(req.state as JsonObject)
  const metadata = metadataFor(state, nowSec)
  return withClientToken({ state, metadata, version, timestamp: nowSec }, req.clientToken)
}

function updateDeltaBody(doc: ShadowDocument, nowSec: number, clientToken?: string): JsonObject | null {
  const delta = computeDelta(doc.state.desired, doc.state.reported)
  if (delta === null) return null
  const metadata = computeDeltaMetadata(delta, doc.metadata.desired)
  return withClientToken({ state: delta, metadata, version: doc.version, timestamp: nowSec }, clientToken)
}

function updateDocumentsBody(previous: ShadowDocument | null, current: ShadowDocument, nowSec: number, clientToken?: string): JsonObject {
  const body = { previous: previous && documentSnapshot(previous), current: documentSnapshot(current), timestamp: nowSec }
  return withClientToken(body, clientToken)
}

// ---------------------------------------------------------------------------------------------
// Update.

/**
 * The version an update's `version` field must match. A live shadow's own version; after a delete
 * the tombstone's last version V (so recreating yields V+1 and versions never repeat, which the JS
 * v1 SDK's stale-message filter needs, §1.6/§2.4); with no history 0, so a brand-new shadow accepts
 * an omitted version or 0 (ShadowManager's create rule). Any other value is a 409 Version conflict:
 * the caller's view of the version is simply stale. ShadowManager answers 400 there; IoT Core's
 * behaviour is undocumented.
 */
function expectedVersion(current: ShadowDocument | null, deletedVersion: number | null): number {
  return current?.version ?? deletedVersion ?? 0
}

/**
 * Applies an update (a request from parseUpdateRequest, or built in code; it is validated again).
 * `deletedVersion` is the tombstone's last version, consulted only when `current` is null.
 * Checks run in §5.3 order: request validity, then 409, then 413 on the merged state and then on
 * its metadata.
 */
export function applyUpdate(current: ShadowDocument | null, deletedVersion: number | null, req: UpdateRequest, nowSec: number, limits: ShadowLimits): UpdateOutcome {
  const out = mergeUpdate(current, deletedVersion, req, nowSec, limits, false)
  if (!out.ok) return out
  const { document, accepted, delta } = out
  return { ok: true, document, accepted, delta, documents: updateDocumentsBody(current, document, nowSec, out.clientToken) }
}

export type OwnedUpdateOutcome =
  | { ok: true; document: ShadowDocument; accepted: JsonObject; delta: JsonObject | null; json: DocumentJson }
  | { ok: false; error: ShadowError }

/**
 * applyUpdate for a caller that owns `current` and `req` (freshly parsed and used for nothing
 * else afterwards, as the shadow service's are): `current` is merged in place and the request's
 * objects are echoed in update/accepted, instead of being copied. No update/documents body is
 * built; the service writes it from the stored JSON. Same checks and results otherwise.
 */
export function applyOwnedUpdate(current: ShadowDocument | null, deletedVersion: number | null, req: UpdateRequest, nowSec: number, limits: ShadowLimits): OwnedUpdateOutcome {
  const out = mergeUpdate(current, deletedVersion, req, nowSec, limits, true)
  if (!out.ok) return out
  return { ok: true, document: out.document, accepted: out.accepted, delta: out.delta, json: out.json }
}

/** A document's state and metadata objects as JSON text, as they were measured. */
export interface DocumentJson {
  state: string
  metadata: string
}

type UpdateMerge =
  | { ok: true; document: ShadowDocument; accepted: JsonObject; delta: JsonObject | null; json: DocumentJson; clientToken: string | undefined }
  | { ok: false; error: ShadowError }

function mergeUpdate(current: ShadowDocument | null, deletedVersion: number | null, req: UpdateRequest, nowSec: number, limits: ShadowLimits, owned: boolean): UpdateMerge {
  const checked = readUpdate(req, limits)
  if (!checked.ok) return { ok: false, error: checked.error }
  const request = checked.value
  const base = expectedVersion(current, deletedVersion)
  if (request.version !== undefined && request.version !== base) return { ok: false, error: ShadowErrors.versionConflict() }
  const document = mergeDocument(current, request.state, nowSec, base + 1, owned)
  const state = sectionsJson(document.state)
  if (state.bytes > limits.maxStateBytes) return { ok: false, error: ShadowErrors.payloadTooLarge() }
  const metadata = sectionsJson(document.metadata)
  if (metadata.bytes > metadataBytesLimit(limits)) return { ok: false, error: ShadowErrors.payloadTooLarge() }
  return {
    ok: true,
    document,
    accepted: updateAcceptedBody(request, document.version, nowSec, owned),
    delta: updateDeltaBody(document, nowSec, request.clientToken),
    json: { state: state.json, metadata: metadata.json },
    clientToken: request.clientToken,
  }
}
