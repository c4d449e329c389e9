import { describe, it, expect } from 'vitest'
import {
  DEFAULT_SHADOW_LIMITS,
  ShadowErrors,
  ShadowRequestError,
  applyUpdate,
  computeDelta,
  computeDeltaMetadata,
  deleteAcceptedBody,
  documentSnapshot,
  errorBody,
  getAcceptedBody,
  notFoundError,
  parseGetOrDeleteRequest,
  parseUpdateRequest,
  stateBytes,
  validateShadowRef,
  type JsonObject,
  type ShadowDocument,
  type ShadowError,
  type ShadowLimits,
  type UpdateOutcome,
  type UpdateRequest,
} from '../../../coordinator/protocol/index.js'

const T0 = 1_700_000_000
const T1 = T0 + 60
const T2 = T0 + 120
const L = DEFAULT_SHADOW_LIMITS

type Accepted = Extract<UpdateOutcome, { ok: true }>

const encode = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))

interface UpdateOptions {
  deletedVersion?: number | null
  now?: number
  limits?: ShadowLimits
}

function run(current: ShadowDocument | null, req: UpdateRequest, opts: UpdateOptions = {}): UpdateOutcome {
  return applyUpdate(current, opts.deletedVersion ?? null, req, opts.now ?? T0, opts.limits ?? L)
}

function update(current: ShadowDocument | null, req: UpdateRequest, opts: UpdateOptions = {}): Accepted {
  const outcome = run(current, req, opts)
  if (!outcome.ok) throw new Error(`expected the update to be accepted, got ${outcome.error.code} ${outcome.error.message}`)
  return outcome
}

function rejected(current: ShadowDocument | null, req: UpdateRequest, opts: UpdateOptions = {}): ShadowError {
  const outcome = run(current, req, opts)
  if (outcome.ok) throw new Error('expected the update to be rejected')
  return outcome.error
}

/** A stored document built through the engine itself, at time `now`. */
function createDoc(state: NonNullable<UpdateRequest['state']>, now = T0): ShadowDocument {
  return update(null, { state }, { now }).document
}

function parseUpdate(body: unknown, limits = L) {
  return parseUpdateRequest(encode(body), limits)
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

/** A section `depth` objects deep counting itself, e.g. 2 -> {a: {a: leaf}}. */
function nested(depth: number, leaf: unknown = 1): JsonObject {
  let node: unknown = leaf
  for (let i = 0; i < depth; i++) node = { a: node }
  return node as JsonObject
}

describe('DEFAULT_SHADOW_LIMITS', () => {
  it('matches IoT Core: 8 KB of state, depth 6, 64-byte client tokens', () => {
    expect(DEFAULT_SHADOW_LIMITS).toStrictEqual({ maxStateBytes: 8192, maxDepth: 6, maxClientTokenBytes: 64 })
  })
})

describe('parseUpdateRequest: accepted shapes', () => {
  it('reads state, clientToken and version', () => {
    const parsed = parseUpdate({ state: { desired: { color: 'red' }, reported: { color: 'blue' } }, clientToken: 'tok-1', version: 17 })
    expect(parsed).toStrictEqual({
      ok: true,
      value: { state: { desired: { color: 'red' }, reported: { color: 'blue' } }, clientToken: 'tok-1', version: 17 },
    })
  })

  it('ignores unknown top-level fields', () => {
    expect(parseUpdate({ state: { reported: { a: 1 } }, metadata: { x: 1 }, timestamp: 5 })).toStrictEqual({ ok: true, value: { state: { reported: { a: 1 } } } })
  })

  it('accepts a null state, null sections and an empty state', () => {
    expect(parseUpdate({ state: null })).toStrictEqual({ ok: true, value: { state: null } })
    expect(parseUpdate({ state: { desired: null, reported: null } })).toStrictEqual({ ok: true, value: { state: { desired: null, reported: null } } })
    expect(parseUpdate({ state: {} })).toStrictEqual({ ok: true, value: { state: {} } })
  })

  it('accepts version 0 and large safe integers', () => {
    expect(parseUpdate({ state: {}, version: 0 })).toMatchObject({ ok: true, value: { version: 0 } })
    expect(parseUpdate({ state: {}, version: Number.MAX_SAFE_INTEGER })).toMatchObject({ ok: true })
  })

  it('accepts an integer version written with a fraction or exponent', () => {
    expect(parseUpdateRequest(encode('{"state":{},"version":3.0}'), L)).toMatchObject({ ok: true, value: { version: 3 } })
    expect(parseUpdateRequest(encode('{"state":{},"version":1e2}'), L)).toMatchObject({ ok: true, value: { version: 100 } })
  })

  it('accepts multi-byte UTF-8 values', () => {
    expect(parseUpdate({ state: { reported: { name: 'Küche 🌡' } } })).toMatchObject({ ok: true, value: { state: { reported: { name: 'Küche 🌡' } } } })
  })

  it('accepts a leading UTF-8 byte order mark, as Jackson does', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...encode({ state: {} })])
    expect(parseUpdateRequest(bom, L)).toStrictEqual({ ok: true, value: { state: {} } })
  })

  it('keeps the order of desired and reported as sent', () => {
    const parsed = parseUpdateRequest(encode('{"state":{"reported":{"a":1},"desired":{"a":2}}}'), L)
    expect(parsed.ok && Object.keys(parsed.value.state ?? {})).toStrictEqual(['reported', 'desired'])
  })

  it('accepts an empty clientToken and echoes it', () => {
    expect(parseUpdate({ state: {}, clientToken: '' })).toStrictEqual({ ok: true, value: { state: {}, clientToken: '' } })
  })

  it('keeps nulls outside arrays, since they mean delete', () => {
    expect(parseUpdate({ state: { desired: { a: null, b: { c: null } } } })).toMatchObject({ ok: true })
  })
})

describe('parseUpdateRequest: encoding and JSON errors', () => {
  it.each([
    ['a lone 0xff byte', [0xff]],
    ['a truncated multi-byte sequence', [0x7b, 0xe2, 0x82]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a UTF-16 surrogate encoded in UTF-8', [0xed, 0xa0, 0x80]],
  ])('answers 415 for %s', (_what, raw) => {
    expect(parseUpdateRequest(new Uint8Array(raw), L)).toStrictEqual({
      ok: false,
      error: { code: 415, message: 'Unsupported documented encoding; supported encoding is UTF-8' },
    })
  })

  it.each([
    ['an empty payload', ''],
    ['blank space', '   '],
    ['truncated JSON', '{"state":'],
    ['plain text', 'hello'],
    ['single quotes', "{'state':{}}"],
    ['a trailing comma', '{"state":{},}'],
  ])('answers 400 Invalid JSON for %s', (_what, text) => {
    expect(parseUpdateRequest(encode(text), L)).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid JSON' } })
  })

  it.each([
    ['an array', '[{"state":{}}]'],
    ['a string', '"state"'],
    ['a number', '42'],
    ['null', 'null'],
  ])('answers 400 when the payload is %s rather than an object', (_what, text) => {
    expect(parseUpdateRequest(encode(text), L)).toStrictEqual({ ok: false, error: ShadowErrors.payloadNotObject() })
  })
})

describe('parseUpdateRequest: state validation', () => {
  it('answers 400 Missing required node: state, echoing a valid clientToken', () => {
    expect(parseUpdate({ clientToken: 'tok' })).toStrictEqual({ ok: false, error: { code: 400, message: 'Missing required node: state' }, clientToken: 'tok' })
    expect(parseUpdate({ desired: { a: 1 } })).toStrictEqual({ ok: false, error: { code: 400, message: 'Missing required node: state' } })
  })

  it.each([['a string', 'on'], ['a number', 1], ['a boolean', true], ['an array', [{ desired: {} }]]])(
    'answers 400 State node must be an object when state is %s',
    (_what, state) => {
      expect(parseUpdate({ state, clientToken: 'tok' })).toStrictEqual({ ok: false, error: { code: 400, message: 'State node must be an object' }, clientToken: 'tok' })
    },
  )

  it.each([['a string', 'red'], ['a number', 3], ['an array', [1]], ['a boolean', false]])('answers 400 when desired is %s', (_what, desired) => {
    expect(parseUpdate({ state: { desired } })).toStrictEqual({ ok: false, error: { code: 400, message: 'Desired node must be an object' } })
  })

  it.each([['a string', 'red'], ['a number', 3], ['an array', [1]], ['a boolean', false]])('answers 400 when reported is %s', (_what, reported) => {
    expect(parseUpdate({ state: { reported } })).toStrictEqual({ ok: false, error: { code: 400, message: 'Reported node must be an object' } })
  })

  it("answers 400 State contains an invalid node: 'delta' like IoT Core", () => {
    expect(parseUpdate({ state: { reported: {}, delta: { a: 1 } }, clientToken: 'tok' })).toStrictEqual({
      ok: false,
      error: { code: 400, message: "State contains an invalid node: 'delta'" },
      clientToken: 'tok',
    })
  })

  it('names the first unknown key in state', () => {
    expect(parseUpdate({ state: { foo: 1, bar: 2 } })).toMatchObject({ ok: false, error: { message: "State contains an invalid node: 'foo'" } })
  })
})

describe('parseUpdateRequest: clientToken and version', () => {
  it('accepts a 64-byte ASCII token and rejects a 65-byte one without echoing it', () => {
    expect(parseUpdate({ state: {}, clientToken: 'x'.repeat(64) })).toMatchObject({ ok: true })
    expect(parseUpdate({ state: {}, clientToken: 'x'.repeat(65) })).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid clientToken' } })
  })

  it('counts the token in UTF-8 bytes, not characters', () => {
    const exactly64 = '€'.repeat(21) + 'a' // 21 x 3 bytes + 1
    const over = '€'.repeat(22) // 66 bytes but only 22 characters
    expect(parseUpdate({ state: {}, clientToken: exactly64 })).toMatchObject({ ok: true, value: { clientToken: exactly64 } })
    expect(parseUpdate({ state: {}, clientToken: over })).toMatchObject({ ok: false, error: { message: 'Invalid clientToken' } })
    expect(parseUpdate({ state: {}, clientToken: '🌡'.repeat(17) })).toMatchObject({ ok: false, error: { message: 'Invalid clientToken' } })
  })

  it('honours a custom token limit', () => {
    const limits = { ...L, maxClientTokenBytes: 4 }
    expect(parseUpdate({ state: {}, clientToken: 'abcd' }, limits)).toMatchObject({ ok: true })
    expect(parseUpdate({ state: {}, clientToken: 'abcde' }, limits)).toMatchObject({ ok: false, error: { message: 'Invalid clientToken' } })
  })

  it.each([['a number', 5], ['an object', { id: 1 }], ['null', null], ['an array', ['t']]])('rejects a clientToken that is %s', (_what, clientToken) => {
    expect(parseUpdate({ state: {}, clientToken })).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid clientToken' } })
  })

  it.each([['negative', -1], ['fractional', 1.5], ['a string', '3'], ['null', null], ['a boolean', true], ['unsafe', 2 ** 53]])(
    'answers 400 Invalid version when it is %s, echoing the clientToken',
    (_what, version) => {
      expect(parseUpdate({ state: {}, clientToken: 'tok', version })).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid version' }, clientToken: 'tok' })
    },
  )
})

describe('parseUpdateRequest: depth limit', () => {
  it('accepts exactly six levels, counting the section as level 1', () => {
    expect(parseUpdate({ state: { desired: nested(6) } })).toMatchObject({ ok: true })
  })

  it('rejects seven levels with the AWS message', () => {
    expect(parseUpdate({ state: { reported: nested(7) }, clientToken: 'tok' })).toStrictEqual({
      ok: false,
      error: { code: 400, message: 'JSON contains too many levels of nesting; maximum is 6' },
      clientToken: 'tok',
    })
  })

  it('does not count scalar leaves as a level', () => {
    expect(parseUpdate({ state: { desired: nested(6, 'leaf') } })).toMatchObject({ ok: true })
    expect(parseUpdate({ state: { desired: nested(6, true) } })).toMatchObject({ ok: true })
  })

  it('counts arrays as levels, like ShadowManager', () => {
    expect(parseUpdate({ state: { desired: nested(5, [1, 2]) } })).toMatchObject({ ok: true })
    expect(parseUpdate({ state: { desired: nested(6, [1, 2]) } })).toMatchObject({ ok: false, error: { code: 400 } })
    expect(parseUpdate({ state: { desired: nested(5, [[1]]) } })).toMatchObject({ ok: false, error: { code: 400 } })
    expect(parseUpdate({ state: { desired: nested(5, [{ b: 1 }]) } })).toMatchObject({ ok: false, error: { code: 400 } })
  })

  it('checks each section and uses the configured limit in the message', () => {
    const limits = { ...L, maxDepth: 3 }
    expect(parseUpdate({ state: { desired: nested(3), reported: nested(3) } }, limits)).toMatchObject({ ok: true })
    expect(parseUpdate({ state: { desired: {}, reported: nested(4) } }, limits)).toStrictEqual({
      ok: false,
      error: { code: 400, message: 'JSON contains too many levels of nesting; maximum is 3' },
    })
  })

  it('survives hostile nesting without exhausting the stack', () => {
    const deep = '{"state":{"desired":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}}'
    expect(parseUpdateRequest(encode(deep), L)).toMatchObject({ ok: false, error: { code: 400 } })
  })
})

describe('parseUpdateRequest: nulls inside arrays', () => {
  it.each([
    ['directly in an array', { list: [1, null] }],
    ['in a nested array', { list: [[null]] }],
    ['in an object inside an array', { list: [{ a: null }] }],
  ])('answers 400 for a null %s, echoing the clientToken', (_what, reported) => {
    expect(parseUpdate({ state: { reported }, clientToken: 'tok' })).toStrictEqual({ ok: false, error: ShadowErrors.nullInArray(), clientToken: 'tok' })
  })

  it('accepts arrays without nulls, including empty ones and arrays of objects', () => {
    expect(parseUpdate({ state: { reported: { a: [], b: [{ x: 1 }, 'y', [2]] } } })).toMatchObject({ ok: true })
  })
})

describe('parseUpdateRequest: validation order (§5.3)', () => {
  const cases: Array<[string, unknown, string]> = [
    ['missing state before a bad clientToken', { clientToken: 5 }, 'Missing required node: state'],
    ['state type before a bad clientToken', { state: 1, clientToken: 5 }, 'State node must be an object'],
    ['section type before an unknown state key', { state: { foo: 1, desired: 2 } }, 'Desired node must be an object'],
    ['desired before reported', { state: { reported: 1, desired: 2 } }, 'Desired node must be an object'],
    ['an unknown state key before a bad clientToken', { state: { delta: {} }, clientToken: 5 }, "State contains an invalid node: 'delta'"],
    ['clientToken before version', { state: {}, clientToken: 5, version: -1 }, 'Invalid clientToken'],
    ['version before depth', { state: { desired: nested(7) }, version: 'x' }, 'Invalid version'],
    ['depth before nulls in arrays', { state: { desired: { l: [null] }, reported: nested(7) } }, 'JSON contains too many levels of nesting; maximum is 6'],
  ]
  it.each(cases)('reports %s', (_what, body, message) => {
    expect(parseUpdate(body)).toMatchObject({ ok: false, error: { code: 400, message } })
  })
})

describe('parseGetOrDeleteRequest', () => {
  it('accepts an empty or blank payload', () => {
    expect(parseGetOrDeleteRequest(new Uint8Array(0), L)).toStrictEqual({ ok: true, value: {} })
    expect(parseGetOrDeleteRequest(encode(' \n'), L)).toStrictEqual({ ok: true, value: {} })
  })

  it('reads the clientToken and ignores version and other fields, as the JS v1 SDK sends them', () => {
    expect(parseGetOrDeleteRequest(encode({ clientToken: 'dev-1', version: 7, extra: true }), L)).toStrictEqual({ ok: true, value: { clientToken: 'dev-1' } })
  })

  it('ignores even an invalid version', () => {
    expect(parseGetOrDeleteRequest(encode({ version: 'nope' }), L)).toStrictEqual({ ok: true, value: {} })
  })

  it('accepts an empty JSON object', () => {
    expect(parseGetOrDeleteRequest(encode({}), L)).toStrictEqual({ ok: true, value: {} })
  })

  it('rejects an invalid clientToken without echoing it', () => {
    expect(parseGetOrDeleteRequest(encode({ clientToken: 'x'.repeat(65) }), L)).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid clientToken' } })
    expect(parseGetOrDeleteRequest(encode({ clientToken: 12 }), L)).toStrictEqual({ ok: false, error: { code: 400, message: 'Invalid clientToken' } })
  })

  it('answers 400 Invalid JSON, 400 for a non-object and 415 for non-UTF-8', () => {
    expect(parseGetOrDeleteRequest(encode('{"clientToken":'), L)).toStrictEqual({ ok: false, error: ShadowErrors.invalidJson() })
    expect(parseGetOrDeleteRequest(encode('["tok"]'), L)).toStrictEqual({ ok: false, error: ShadowErrors.payloadNotObject() })
    expect(parseGetOrDeleteRequest(new Uint8Array([0xfe, 0xff]), L)).toStrictEqual({ ok: false, error: ShadowErrors.unsupportedEncoding() })
  })
})

describe('applyUpdate: creating a shadow', () => {
  it('creates version 1 with metadata, and publishes accepted, delta and documents', () => {
    const out = update(null, { state: { desired: { color: 'red' } }, clientToken: 'c1' })
    expect(out.document).toStrictEqual({
      state: { desired: { color: 'red' } },
      metadata: { desired: { color: { timestamp: T0 } } },
      version: 1,
    })
    expect(out.accepted).toStrictEqual({
      state: { desired: { color: 'red' } },
      metadata: { desired: { color: { timestamp: T0 } } },
      version: 1,
      timestamp: T0,
      clientToken: 'c1',
    })
    expect(out.delta).toStrictEqual({ state: { color: 'red' }, metadata: { color: { timestamp: T0 } }, version: 1, timestamp: T0, clientToken: 'c1' })
    expect(out.documents).toStrictEqual({
      previous: null,
      current: { state: { desired: { color: 'red' } }, metadata: { desired: { color: { timestamp: T0 } } }, version: 1 },
      timestamp: T0,
      clientToken: 'c1',
    })
  })

  it('accepts version 0 or no version for a shadow that never existed', () => {
    expect(update(null, { state: {}, version: 0 }).document.version).toBe(1)
    expect(update(null, { state: {} }).document.version).toBe(1)
  })

  it('answers 409 for any other version on a shadow that never existed', () => {
    expect(rejected(null, { state: {}, version: 1 })).toStrictEqual({ code: 409, message: 'Version conflict' })
    expect(rejected(null, { state: {}, version: 5 })).toStrictEqual({ code: 409, message: 'Version conflict' })
  })

  it('creates an empty shadow from an empty or null state', () => {
    expect(update(null, { state: {} }).document).toStrictEqual({ state: {}, metadata: {}, version: 1 })
    expect(update(null, { state: null }).document).toStrictEqual({ state: {}, metadata: {}, version: 1 })
  })

  it('does not store nulls or empty objects from a new subtree', () => {
    const doc = update(null, { state: { reported: { a: { b: null, c: 1, d: {} }, e: null, f: { g: null } } } }).document
    expect(doc.state).toStrictEqual({ reported: { a: { c: 1 } } })
    expect(doc.metadata).toStrictEqual({ reported: { a: { c: { timestamp: T0 } } } })
  })
})

describe('applyUpdate: versions and optimistic locking (§1.6)', () => {
  const atVersion = (version: number): ShadowDocument => ({ ...createDoc({ reported: { t: 20 } }), version })

  it('rejects version 9 against stored version 10 and accepts version 10, producing 11', () => {
    const stored = atVersion(10)
    expect(rejected(stored, { state: { reported: { t: 21 } }, version: 9 })).toStrictEqual({ code: 409, message: 'Version conflict' })
    const out = update(stored, { state: { reported: { t: 21 } }, version: 10 })
    expect(out.document.version).toBe(11)
    expect(out.accepted.version).toBe(11)
  })

  it('rejects a version ahead of the stored one', () => {
    expect(rejected(atVersion(10), { state: {}, version: 11 }).code).toBe(409)
  })

  it('skips the check when version is omitted', () => {
    expect(update(atVersion(10), { state: { reported: { t: 1 } } }).document.version).toBe(11)
  })

  it('increments by exactly one on every accepted update, including no-op and empty ones', () => {
    let doc = createDoc({ reported: { t: 1 } })
    for (const state of [{ reported: { t: 1 } }, {}, { desired: { missing: null } }]) {
      const before = doc.version
      doc = update(doc, { state }).document
      expect(doc.version).toBe(before + 1)
    }
  })

  it('keeps counting after a delete: recreate continues from the tombstone version', () => {
    const v1 = createDoc({ reported: { on: true } })
    const v2 = update(v1, { state: { reported: { on: false } } }).document
    expect(deleteAcceptedBody(v2.version, T1, 'del')).toStrictEqual({ version: 2, timestamp: T1, clientToken: 'del' })
    const recreated = update(null, { state: { reported: { on: true } } }, { deletedVersion: v2.version, now: T2 })
    expect(recreated.document.version).toBe(3)
    expect(recreated.documents.previous).toBeNull()
    expect(recreated.document.metadata).toStrictEqual({ reported: { on: { timestamp: T2 } } })
  })

  it('accepts the tombstone version or no version when recreating, and 409s anything else', () => {
    expect(update(null, { state: {}, version: 7 }, { deletedVersion: 7 }).document.version).toBe(8)
    expect(update(null, { state: {} }, { deletedVersion: 7 }).document.version).toBe(8)
    expect(rejected(null, { state: {}, version: 0 }, { deletedVersion: 7 }).code).toBe(409)
    expect(rejected(null, { state: {}, version: 8 }, { deletedVersion: 7 }).code).toBe(409)
  })

  it('ignores the tombstone while a live document exists', () => {
    expect(update(atVersion(3), { state: {}, version: 3 }, { deletedVersion: 9 }).document.version).toBe(4)
  })
})

describe('applyUpdate: merge (§1.4)', () => {
  it('merges partially and recursively, keeping fields the request does not mention', () => {
    const doc = createDoc({ desired: { color: 'red', light: { level: 3, mode: 'auto' } }, reported: { color: 'red' } })
    const next = update(doc, { state: { desired: { light: { level: 5 } } } }).document
    expect(next.state).toStrictEqual({ desired: { color: 'red', light: { level: 5, mode: 'auto' } }, reported: { color: 'red' } })
  })

  it('deletes a leaf set to null, together with its metadata', () => {
    const doc = createDoc({ reported: { a: 1, b: 2 } })
    const next = update(doc, { state: { reported: { a: null } } }, { now: T1 }).document
    expect(next.state).toStrictEqual({ reported: { b: 2 } })
    expect(next.metadata).toStrictEqual({ reported: { b: { timestamp: T0 } } })
  })

  it('deletes a whole subtree set to null', () => {
    const doc = createDoc({ reported: { net: { ip: '10.0.0.2', mask: 24 }, up: true } })
    expect(update(doc, { state: { reported: { net: null } } }).document.state).toStrictEqual({ reported: { up: true } })
  })

  it('treats an empty object as a delete, like ShadowManager', () => {
    const doc = createDoc({ reported: { a: { x: 1 }, b: { y: 1, z: 2 } } })
    const next = update(doc, { state: { reported: { a: {}, b: { y: {} } } } }).document
    expect(next.state).toStrictEqual({ reported: { b: { z: 2 } } })
    expect(next.metadata).toStrictEqual({ reported: { b: { z: { timestamp: T0 } } } })
  })

  it('clears a section sent as an empty object', () => {
    const doc = createDoc({ desired: { a: 1 }, reported: { a: 1 } })
    expect(update(doc, { state: { desired: {} } }).document.state).toStrictEqual({ reported: { a: 1 } })
  })

  it('removes a section sent as null and leaves the other one alone', () => {
    const doc = createDoc({ desired: { a: 1 }, reported: { a: 2 } })
    const next = update(doc, { state: { desired: null } }).document
    expect(next.state).toStrictEqual({ reported: { a: 2 } })
    expect(next.metadata).toStrictEqual({ reported: { a: { timestamp: T0 } } })
  })

  it('removes all state on state: null, but the shadow remains and its version increments', () => {
    const doc = createDoc({ desired: { a: 1 }, reported: { a: 2 } })
    const out = update(doc, { state: null, clientToken: 'wipe' }, { now: T1 })
    expect(out.document).toStrictEqual({ state: {}, metadata: {}, version: 2 })
    expect(out.accepted).toStrictEqual({ state: null, metadata: { timestamp: T1 }, version: 2, timestamp: T1, clientToken: 'wipe' })
    expect(out.delta).toBeNull()
    expect(out.documents).toMatchObject({ previous: { version: 1 }, current: { state: {}, metadata: {}, version: 2 } })
  })

  it('drops a section once its last key is deleted', () => {
    const doc = createDoc({ desired: { a: 1 }, reported: { a: 1 } })
    const next = update(doc, { state: { desired: { a: null } } }).document
    expect(next.state).toStrictEqual({ reported: { a: 1 } })
    expect(next.metadata).not.toHaveProperty('desired')
  })

  it('drops nested objects that become empty', () => {
    const doc = createDoc({ reported: { a: { b: { c: 1 } }, keep: 1 } })
    const next = update(doc, { state: { reported: { a: { b: { c: null } } } } }).document
    expect(next.state).toStrictEqual({ reported: { keep: 1 } })
    expect(next.metadata).toStrictEqual({ reported: { keep: { timestamp: T0 } } })
  })

  it('ignores a delete of a key that does not exist', () => {
    const doc = createDoc({ reported: { a: 1 } })
    expect(update(doc, { state: { reported: { ghost: null, g2: { x: null } } } }).document.state).toStrictEqual({ reported: { a: 1 } })
  })

  it('replaces arrays atomically rather than merging by index', () => {
    const doc = createDoc({ reported: { list: [1, 2, 3], objs: [{ a: 1, b: 2 }] } })
    const next = update(doc, { state: { reported: { list: [9], objs: [{ a: 5 }] } } }).document
    expect(next.state).toStrictEqual({ reported: { list: [9], objs: [{ a: 5 }] } })
  })

  it.each([
    ['an object with a scalar', { v: { x: 1 } }, { v: 7 }, { v: { timestamp: T1 } }],
    ['a scalar with an object', { v: 7 }, { v: { x: 1 } }, { v: { x: { timestamp: T1 } } }],
    ['an array with an object', { v: [1, 2] }, { v: { x: 1 } }, { v: { x: { timestamp: T1 } } }],
    ['an object with an array', { v: { x: 1 } }, { v: [1] }, { v: [{ timestamp: T1 }] }],
    ['a string with a number', { v: 'on' }, { v: 1 }, { v: { timestamp: T1 } }],
  ])('replaces %s, and the metadata follows', (_what, before, patch, meta) => {
    const doc = createDoc({ reported: before as JsonObject })
    const next = update(doc, { state: { reported: patch as JsonObject } }, { now: T1 }).document
    expect(next.state.reported).toStrictEqual(patch)
    expect(next.metadata.reported).toStrictEqual(meta)
  })

  it('does not clear desired when reported catches up', () => {
    const doc = createDoc({ desired: { t: 21 } })
    expect(update(doc, { state: { reported: { t: 21 } } }).document.state).toStrictEqual({ desired: { t: 21 }, reported: { t: 21 } })
  })

  it('treats keys such as __proto__ and constructor as plain data', () => {
    const parsed = parseUpdateRequest(encode('{"state":{"reported":{"__proto__":{"polluted":1},"constructor":2}}}'), L)
    if (!parsed.ok) throw new Error('parse failed')
    const doc = update(null, parsed.value).document
    expect(JSON.stringify(doc.state)).toBe('{"reported":{"__proto__":{"polluted":1},"constructor":2}}')
    expect(Object.getPrototypeOf(doc.state.reported)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    const next = update(doc, { state: { reported: JSON.parse('{"__proto__":null}') as JsonObject } }).document
    expect(JSON.stringify(next.state)).toBe('{"reported":{"constructor":2}}')
  })

  it('does not mistake inherited properties for reported values in the delta', () => {
    const doc = createDoc({ desired: { toString: 'x', constructor: 'y' }, reported: {} })
    expect(computeDelta(doc.state.desired, { a: 1 })).toStrictEqual({ toString: 'x', constructor: 'y' })
  })
})

describe('applyUpdate: metadata (§1.4.6, §1.3.1)', () => {
  it('stamps touched leaves and keeps the timestamps of untouched ones', () => {
    const doc = createDoc({ reported: { a: 1, n: { x: 1, y: 2 } } })
    const next = update(doc, { state: { reported: { n: { y: 3 } } } }, { now: T1 }).document
    expect(next.metadata).toStrictEqual({ reported: { a: { timestamp: T0 }, n: { x: { timestamp: T0 }, y: { timestamp: T1 } } } })
  })

  it('restamps a leaf written with the same value', () => {
    const doc = createDoc({ reported: { a: 1 } })
    expect(update(doc, { state: { reported: { a: 1 } } }, { now: T1 }).document.metadata).toStrictEqual({ reported: { a: { timestamp: T1 } } })
  })

  it('gives arrays one metadata entry per element, recursing into objects and nested arrays', () => {
    const doc = createDoc({ reported: { colors: ['red', 'green'], points: [{ x: 1, y: 2 }], grid: [[1, 2]], empty: [] } })
    expect(doc.metadata).toStrictEqual({
      reported: {
        colors: [{ timestamp: T0 }, { timestamp: T0 }],
        points: [{ x: { timestamp: T0 }, y: { timestamp: T0 } }],
        grid: [[{ timestamp: T0 }, { timestamp: T0 }]],
        empty: [],
      },
    })
  })

  it('replaces array metadata when the array is replaced by a shorter one', () => {
    const doc = createDoc({ reported: { colors: ['red', 'green', 'blue'] } })
    expect(update(doc, { state: { reported: { colors: ['cyan'] } } }, { now: T1 }).document.metadata).toStrictEqual({ reported: { colors: [{ timestamp: T1 }] } })
  })

  it('mirrors the request state in accepted metadata, nulls included', () => {
    const doc = createDoc({ desired: { color: 'red' }, reported: { color: 'blue' } })
    const out = update(doc, { state: { reported: { color: 'green', list: ['a'], sub: { x: null, y: {} } }, desired: null }, clientToken: 'abc-1' }, { now: T1 })
    expect(out.accepted).toStrictEqual({
      state: { reported: { color: 'green', list: ['a'], sub: { x: null, y: {} } }, desired: null },
      metadata: { reported: { color: { timestamp: T1 }, list: [{ timestamp: T1 }], sub: { x: { timestamp: T1 }, y: {} } }, desired: { timestamp: T1 } },
      version: 2,
      timestamp: T1,
      clientToken: 'abc-1',
    })
  })

  it('reproduces the update/accepted example of §1.3.1', () => {
    const doc = { ...createDoc({ desired: { color: 'green' }, reported: { color: 'red' } }), version: 2 }
    const out = update(doc, { state: { reported: { color: 'green' }, desired: null }, clientToken: 'abc-1' }, { now: 1469564801 })
    expect(JSON.stringify(out.accepted)).toBe(
      '{"state":{"reported":{"color":"green"},"desired":null},"metadata":{"reported":{"color":{"timestamp":1469564801}},"desired":{"timestamp":1469564801}},"version":3,"timestamp":1469564801,"clientToken":"abc-1"}',
    )
    expect(out.document.state).toStrictEqual({ reported: { color: 'green' } })
  })

  it('leaves clientToken out of every reply when the request had none', () => {
    const out = update(null, { state: { desired: { a: 1 } } })
    expect(out.accepted).not.toHaveProperty('clientToken')
    expect(out.delta).not.toHaveProperty('clientToken')
    expect(out.documents).not.toHaveProperty('clientToken')
  })
})

describe('applyUpdate: delta (§1.3.2, §1.5)', () => {
  it('lists every differing desired key, not only the ones this update touched', () => {
    const doc = createDoc({ desired: { a: 1, b: 2, c: 3 }, reported: { a: 0, b: 0, c: 3 } })
    const out = update(doc, { state: { desired: { a: 5 } }, clientToken: 'tok' }, { now: T1 })
    expect(out.delta).toStrictEqual({
      state: { a: 5, b: 2 },
      metadata: { a: { timestamp: T1 }, b: { timestamp: T0 } },
      version: 2,
      timestamp: T1,
      clientToken: 'tok',
    })
  })

  it('is still published after a reported-only update that leaves a difference', () => {
    const doc = createDoc({ desired: { a: 1, b: 2 } })
    expect(update(doc, { state: { reported: { a: 1 } } }).delta).toMatchObject({ state: { b: 2 } })
  })

  it('disappears once reported catches up', () => {
    const doc = createDoc({ desired: { t: 21, mode: 'heat' }, reported: { t: 18, mode: 'heat' } })
    expect(getAcceptedBody(doc, T1).state).toHaveProperty('delta', { t: 21 })
    const out = update(doc, { state: { reported: { t: 21 } } }, { now: T1 })
    expect(out.delta).toBeNull()
    expect(getAcceptedBody(out.document, T1).state).not.toHaveProperty('delta')
  })

  it('is null when there is no desired section', () => {
    expect(update(null, { state: { reported: { a: 1 } } }).delta).toBeNull()
  })

  it('keeps the path to the root for nested differences, with matching desired metadata', () => {
    const doc = createDoc({ desired: { light: { level: 3, mode: 'auto' } }, reported: { light: { level: 1, mode: 'auto' } } })
    const out = update(doc, { state: { reported: { other: true } } }, { now: T1 })
    expect(out.delta).toMatchObject({ state: { light: { level: 3 } }, metadata: { light: { level: { timestamp: T0 } } } })
  })

  it('carries the whole desired subtree when reported lacks the key', () => {
    const doc = createDoc({ desired: { light: { level: 3, mode: 'auto' } }, reported: { other: 1 } })
    expect(getAcceptedBody(doc, T1).state).toHaveProperty('delta', { light: { level: 3, mode: 'auto' } })
  })

  it('carries array metadata for an array in the delta', () => {
    const doc = createDoc({ desired: { seq: ['r', 'g'] }, reported: { seq: ['g', 'r'] } })
    expect(getAcceptedBody(doc, T1)).toMatchObject({ state: { delta: { seq: ['r', 'g'] } }, metadata: { delta: { seq: [{ timestamp: T0 }, { timestamp: T0 }] } } })
  })
})

describe('computeDelta', () => {
  it('returns null without desired and the whole desired without reported', () => {
    expect(computeDelta(undefined, { a: 1 })).toBeNull()
    expect(computeDelta({ a: 1, b: { c: 2 } }, undefined)).toStrictEqual({ a: 1, b: { c: 2 } })
  })

  it('returns null when nothing differs', () => {
    expect(computeDelta({ a: 1, b: { c: [1, { d: 2 }] } }, { a: 1, b: { c: [1, { d: 2 }] }, extra: 9 })).toBeNull()
  })

  it('compares numbers by value, so 1 equals 1.0', () => {
    const desired = JSON.parse('{"t":1,"u":[2.0]}') as JsonObject
    const reported = JSON.parse('{"t":1.0,"u":[2]}') as JsonObject
    expect(computeDelta(desired, reported)).toBeNull()
  })

  it('compares arrays as whole values, order included', () => {
    expect(computeDelta({ l: [1, 2] }, { l: [2, 1] })).toStrictEqual({ l: [1, 2] })
    expect(computeDelta({ l: [1, 2] }, { l: [1, 2, 3] })).toStrictEqual({ l: [1, 2] })
  })

  it('compares objects inside arrays regardless of key order', () => {
    expect(computeDelta({ l: [{ a: 1, b: 2 }] }, { l: [{ b: 2, a: 1 }] })).toBeNull()
    expect(computeDelta({ l: [{ a: 1 }] }, { l: [{ a: 1, b: 2 }] })).toStrictEqual({ l: [{ a: 1 }] })
  })

  it('returns the desired value on a type mismatch', () => {
    expect(computeDelta({ a: { x: 1 }, b: '1', c: [1], d: true }, { a: 1, b: 1, c: { 0: 1 }, d: 'true' })).toStrictEqual({ a: { x: 1 }, b: '1', c: [1], d: true })
  })

  it('never includes keys that are only in reported', () => {
    expect(computeDelta({ a: 1 }, { a: 1, b: 2 })).toBeNull()
  })

  it('returns a copy that shares nothing with its inputs', () => {
    const desired = { a: { b: 1 } }
    const delta = computeDelta(desired, undefined)
    expect(delta).not.toBe(desired)
    expect(delta?.a).not.toBe(desired.a)
  })
})

describe('computeDeltaMetadata', () => {
  it('picks the desired metadata at the delta paths and skips paths without metadata', () => {
    const meta = { a: { timestamp: 1 }, n: { x: { timestamp: 2 }, y: { timestamp: 3 } } }
    expect(computeDeltaMetadata({ n: { y: 5 }, ghost: 1 }, meta)).toStrictEqual({ n: { y: { timestamp: 3 } } })
    expect(computeDeltaMetadata({ a: 1 }, undefined)).toStrictEqual({})
  })
})

describe('applyUpdate: size limit (§1.8)', () => {
  // {"s":"…"} is 8 bytes of overhead around the string.
  const sized = (bytes: number): JsonObject => ({ s: 'x'.repeat(bytes - 8) })

  it('accepts a state of exactly the limit and rejects one byte more with 413', () => {
    expect(stateBytes({ reported: sized(8192) })).toBe(8192)
    expect(update(null, { state: { reported: sized(8192) } }).document.version).toBe(1)
    expect(rejected(null, { state: { reported: sized(8193) } })).toStrictEqual({ code: 413, message: 'The payload exceeds the maximum size allowed' })
  })

  it('measures the merged desired plus reported, not the request', () => {
    const doc = createDoc({ desired: sized(4096), reported: sized(4096) })
    expect(stateBytes(doc.state)).toBe(8192)
    expect(rejected(doc, { state: { reported: { b: 1 } } }).code).toBe(413)
    expect(update(doc, { state: { reported: { s: 'x' } } }).document.version).toBe(2)
  })

  it('counts multi-byte characters as UTF-8 bytes', () => {
    expect(stateBytes({ reported: { s: '€' } })).toBe(11)
    const limits = { ...L, maxStateBytes: 10 }
    expect(rejected(null, { state: { reported: { s: '€' } } }, { limits }).code).toBe(413)
  })

  it('does not count metadata', () => {
    const doc = createDoc({ reported: { list: Array.from({ length: 2000 }, () => 1) } })
    expect(stateBytes(doc.state)).toBe(JSON.stringify(doc.state.reported).length)
    expect(JSON.stringify(doc.metadata).length).toBeGreaterThan(8192)
  })

  it('counts an absent section as zero bytes', () => {
    expect(stateBytes({})).toBe(0)
    expect(stateBytes({ desired: { a: 1 } })).toBe(7)
  })

  it('reports a version conflict before the size', () => {
    expect(rejected(null, { state: { reported: sized(9000) }, version: 3 }).code).toBe(409)
  })

  it('accepts an update that brings an oversized document back under the limit', () => {
    const big = { ...createDoc({ reported: sized(8000) }), state: { reported: sized(9000) } }
    expect(update(big, { state: { reported: { s: null } } }).document.state).toStrictEqual({})
  })
})

describe('applyUpdate: programmatic requests are validated too', () => {
  it.each([
    ['too deep', { state: { desired: nested(7) } }, 400],
    ['a null in an array', { state: { desired: { l: [null] } } }, 400],
    ['a bad version', { state: {}, version: -2 }, 400],
    ['a long clientToken', { state: {}, clientToken: 'x'.repeat(65) }, 400],
    ['an unknown state node', { state: { delta: {} } }, 400],
  ])('rejects %s', (_what, req, code) => {
    expect(rejected(null, req as unknown as UpdateRequest).code).toBe(code)
  })

  it('treats an explicitly undefined section or field as absent', () => {
    const out = update(null, { state: { desired: undefined, reported: { a: 1 } }, clientToken: undefined, version: undefined } as unknown as UpdateRequest)
    expect(out.accepted).toStrictEqual({ state: { reported: { a: 1 } }, metadata: { reported: { a: { timestamp: T0 } } }, version: 1, timestamp: T0 })
  })
})

describe('applyUpdate: purity', () => {
  it('never mutates the stored document or the request', () => {
    const doc = deepFreeze(createDoc({ desired: { a: { b: 1 }, l: [1] }, reported: { a: { b: 0 } } }))
    const req = deepFreeze<UpdateRequest>({ state: { desired: { a: { b: null, c: 2 }, l: [2] }, reported: null }, clientToken: 't' })
    expect(() => update(doc, req, { now: T1 })).not.toThrow()
    expect(doc.state).toStrictEqual({ desired: { a: { b: 1 }, l: [1] }, reported: { a: { b: 0 } } })
  })

  it('returns objects that share nothing with the inputs', () => {
    const doc = createDoc({ desired: { a: { b: 1 } }, reported: { keep: { x: 1 } } })
    const req: UpdateRequest = { state: { desired: { n: { m: [1] } } } }
    const out = update(doc, req)
    ;(out.document.state.reported?.['keep'] as JsonObject)['x'] = 99
    ;((out.document.state.desired?.['n'] as JsonObject)['m'] as number[]).push(2)
    ;((out.accepted['state'] as JsonObject)['desired'] as JsonObject)['n'] = 0
    ;(((out.documents['current'] as JsonObject)['state'] as JsonObject)['desired'] as JsonObject)['a'] = 0
    expect(doc.state.reported).toStrictEqual({ keep: { x: 1 } })
    expect(req.state?.desired).toStrictEqual({ n: { m: [1] } })
    expect(out.document.state.desired?.['a']).toStrictEqual({ b: 1 })
  })

  it('returns a fresh document even for an empty update', () => {
    const doc = createDoc({ reported: { a: 1 } })
    const out = update(doc, { state: {} })
    expect(out.document.state).not.toBe(doc.state)
    expect(out.document.state.reported).not.toBe(doc.state.reported)
  })
})

describe('update/documents (§1.3.3)', () => {
  it('holds previous and current snapshots without delta, plus timestamp and clientToken', () => {
    const doc = createDoc({ desired: { t: 21 }, reported: { t: 18 } })
    const out = update(doc, { state: { reported: { t: 19 } }, clientToken: 'x' }, { now: T1 })
    expect(out.documents).toStrictEqual({
      previous: { state: { desired: { t: 21 }, reported: { t: 18 } }, metadata: { desired: { t: { timestamp: T0 } }, reported: { t: { timestamp: T0 } } }, version: 1 },
      current: { state: { desired: { t: 21 }, reported: { t: 19 } }, metadata: { desired: { t: { timestamp: T0 } }, reported: { t: { timestamp: T1 } } }, version: 2 },
      timestamp: T1,
      clientToken: 'x',
    })
  })

  it('documentSnapshot has exactly state, metadata and version', () => {
    const doc = createDoc({ desired: { a: 1 } })
    expect(Object.keys(documentSnapshot(doc))).toStrictEqual(['state', 'metadata', 'version'])
  })
})

describe('getAcceptedBody (§1.3.4)', () => {
  it('returns state with delta, metadata with delta, version, timestamp and clientToken', () => {
    const doc = { ...createDoc({ desired: { a: 1, b: 2 }, reported: { a: 1, c: 3 } }), version: 10 }
    expect(getAcceptedBody(doc, 123456789, 'tok')).toStrictEqual({
      state: { desired: { a: 1, b: 2 }, reported: { a: 1, c: 3 }, delta: { b: 2 } },
      metadata: {
        desired: { a: { timestamp: T0 }, b: { timestamp: T0 } },
        reported: { a: { timestamp: T0 }, c: { timestamp: T0 } },
        delta: { b: { timestamp: T0 } },
      },
      version: 10,
      timestamp: 123456789,
      clientToken: 'tok',
    })
  })

  it('omits delta when in sync and clientToken when absent', () => {
    const body = getAcceptedBody(createDoc({ desired: { a: 1 }, reported: { a: 1 } }), T1)
    expect(body).toStrictEqual({
      state: { desired: { a: 1 }, reported: { a: 1 } },
      metadata: { desired: { a: { timestamp: T0 } }, reported: { a: { timestamp: T0 } } },
      version: 1,
      timestamp: T1,
    })
  })

  it('describes an empty shadow as empty state and metadata', () => {
    expect(getAcceptedBody({ state: {}, metadata: {}, version: 4 }, T1, '')).toStrictEqual({ state: {}, metadata: {}, version: 4, timestamp: T1, clientToken: '' })
  })

  it('shares no objects with the stored document', () => {
    const doc = createDoc({ reported: { a: { b: 1 } } })
    const body = getAcceptedBody(doc, T1)
    expect((body['state'] as JsonObject)['reported']).not.toBe(doc.state.reported)
  })
})

describe('delete, error and not-found bodies', () => {
  it('deleteAcceptedBody is {version, timestamp, clientToken?}', () => {
    expect(deleteAcceptedBody(4, 1591057529, 'tok')).toStrictEqual({ version: 4, timestamp: 1591057529, clientToken: 'tok' })
    expect(deleteAcceptedBody(4, 1591057529)).toStrictEqual({ version: 4, timestamp: 1591057529 })
  })

  it('errorBody is {code, message, timestamp, clientToken?}', () => {
    expect(errorBody(ShadowErrors.versionConflict(), 1591057529, 'tok')).toStrictEqual({ code: 409, message: 'Version conflict', timestamp: 1591057529, clientToken: 'tok' })
    expect(errorBody({ code: 404, message: 'x' }, 5)).toStrictEqual({ code: 404, message: 'x', timestamp: 5 })
  })

  it('notFoundError names the thing for a classic shadow and the shadow otherwise, quoted', () => {
    expect(notFoundError({ thingName: 'MyThing' })).toStrictEqual({ code: 404, message: "No shadow exists with name: 'MyThing'" })
    expect(notFoundError({ thingName: 'MyThing', shadowName: '' })).toStrictEqual({ code: 404, message: "No shadow exists with name: 'MyThing'" })
    expect(notFoundError({ thingName: 'MyThing', shadowName: 'cfg' })).toStrictEqual({ code: 404, message: "No shadow exists with name: 'cfg'" })
  })

  it('validateShadowRef answers 400 for an invalid thing or shadow name', () => {
    expect(validateShadowRef({ thingName: 'ok', shadowName: 'fine' })).toBeNull()
    expect(validateShadowRef({ thingName: 'bad.thing' })).toStrictEqual({ code: 400, message: 'Invalid thing name' })
    expect(validateShadowRef({ thingName: 'ok', shadowName: 'bad name' })).toStrictEqual({ code: 400, message: 'Invalid shadow name' })
  })

  it('ShadowErrors returns a fresh object on each call', () => {
    const a = ShadowErrors.internal()
    a.message = 'changed'
    expect(ShadowErrors.internal()).toStrictEqual({ code: 500, message: 'Internal service failure' })
  })

  it('ShadowRequestError carries the code, message and clientToken', () => {
    const err = new ShadowRequestError(ShadowErrors.versionConflict(), 'tok')
    expect(err).toBeInstanceOf(Error)
    expect([err.code, err.message, err.clientToken, err.name]).toStrictEqual([409, 'Version conflict', 'tok', 'ShadowRequestError'])
    expect(err.toShadowError()).toStrictEqual({ code: 409, message: 'Version conflict' })
    expect(new ShadowRequestError(ShadowErrors.internal())).not.toHaveProperty('clientToken')
  })
})

describe('a JS v1 SDK style session', () => {
  it('keeps versions strictly increasing across create, updates, delete and recreate', () => {
    const seen: number[] = []
    let doc = update(null, { state: { reported: { on: true } }, clientToken: 'c-1' }).document
    seen.push(doc.version)
    doc = update(doc, { state: { desired: { on: false } }, clientToken: 'c-2', version: doc.version }).document
    seen.push(doc.version)
    const out = update(doc, { state: { reported: { on: false } }, clientToken: 'c-3', version: doc.version })
    expect(out.delta).toBeNull()
    seen.push(out.document.version)
    const tombstone = out.document.version
    seen.push(deleteAcceptedBody(tombstone, T1, 'c-4')['version'] as number)
    const recreated = update(null, { state: { reported: { on: true } }, clientToken: 'c-5', version: tombstone }, { deletedVersion: tombstone })
    seen.push(recreated.document.version)
    expect(seen).toStrictEqual([1, 2, 3, 3, 4])
  })
})
