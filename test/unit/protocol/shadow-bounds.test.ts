import { describe, expect, it } from 'vitest'
import {
  DEFAULT_SHADOW_LIMITS, METADATA_BYTES_PER_STATE_BYTE, applyUpdate, metadataBytes, metadataBytesLimit, parseUpdateRequest,
  requestStateBytes, stateBytes, type JsonObject, type ShadowDocument, type UpdateRequest,
} from '../../../coordinator/protocol/index.js'

const T0 = 1_700_000_000
const L = DEFAULT_SHADOW_LIMITS
const encode = (v: unknown): Uint8Array => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))

function created(state: NonNullable<UpdateRequest['state']>): ShadowDocument {
  const out = applyUpdate(null, null, { state }, T0, L)
  if (!out.ok) throw new Error(`expected acceptance, got ${out.error.code}`)
  return out.document
}

describe('requestStateBytes: the smallest merged state a request can make', () => {
  it.each([
    ['scalars', { reported: { a: 1, b: 'x', c: true, d: 1.5, e: -0 } }],
    ['nested objects', { desired: { a: { b: { c: 1 } } }, reported: { z: 2 } }],
    ['arrays, with objects and empty containers inside kept as sent', { reported: { l: [1, [2, []], { a: 1, b: {} }, 'q'], e: [] } }],
    ['text needing escapes or several bytes', { reported: { 'k"\\': 'line\nbreak', é: 'Küche 🌡', ctl: '\u0001', del: '\u007f' } }],
    ['number notation that JSON rewrites', { reported: { big: 1e21, small: 1e-7 } }],
  ])('equals stateBytes of the document a new shadow gets, for %s', (_what, state) => {
    const parsed = JSON.parse(JSON.stringify(state)) as JsonObject
    expect(requestStateBytes(parsed, 6)).toBe(stateBytes(created(parsed).state))
  })

  it('leaves out deletions and the objects they leave empty, so it never exceeds the merged state', () => {
    const current = created({ reported: { keep: 'x'.repeat(100), gone: 1, obj: { a: 1 } } })
    const patch = { reported: { gone: null, obj: { a: null }, empty: {}, nested: { only: { null: null } }, add: 7 } } as unknown as JsonObject
    const out = applyUpdate(current, null, { state: patch }, T0, L)
    if (!out.ok) throw new Error('expected acceptance')
    expect(requestStateBytes(patch, 6)).toBe(JSON.stringify({ add: 7 }).length)
    expect(requestStateBytes(patch, 6)).toBeLessThanOrEqual(stateBytes(out.document.state))
  })

  it('counts nothing for a null state or null sections', () => {
    expect(requestStateBytes(null, 6)).toBe(0)
    expect(requestStateBytes({ desired: null, reported: null }, 6)).toBe(0)
  })

  it('stops walking once past stopAbove, and at the depth limit', () => {
    const wide = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]))
    const n = requestStateBytes({ reported: wide }, 6, 100)
    expect(n).toBeGreaterThan(100)
    expect(n).toBeLessThan(200)
    let deep: JsonObject = { leaf: 1 }
    for (let i = 0; i < 10_000; i++) deep = { a: deep }
    expect(requestStateBytes({ reported: deep }, 6)).toBeNull()
  })
})

describe('parseUpdateRequest: a state that cannot fit is a 413 before validation', () => {
  const big = 'x'.repeat(9000)

  it.each([
    ['a null inside an array', { state: { reported: { big, l: [null] } }, clientToken: 't' }],
    ['a bad version', { state: { reported: { big } }, version: -1, clientToken: 't' }],
    ['too deep a nesting after the large part', { state: { reported: { big, a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } }, clientToken: 't' }],
  ])('answers 413 (echoing a valid clientToken) to an oversized state with %s', (_what, body) => {
    expect(parseUpdateRequest(encode(body), L)).toStrictEqual({ ok: false, error: { code: 413, message: 'The payload exceeds the maximum size allowed' }, clientToken: 't' })
  })

  it('accepts a large request whose deletions leave a state within the limit', () => {
    const deletions = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`old${i}`, null]))
    const payload = encode({ state: { reported: { ...deletions, on: true } } })
    expect(payload.byteLength).toBeGreaterThan(L.maxStateBytes)
    expect(parseUpdateRequest(payload, L)).toMatchObject({ ok: true })
  })

  it('still answers 400 to small invalid JSON', () => {
    expect(parseUpdateRequest(encode('{"state":'), L)).toMatchObject({ ok: false, error: { code: 400 } })
  })
})

describe('applyUpdate: metadata bytes are bounded', () => {
  it(`defaults to ${METADATA_BYTES_PER_STATE_BYTE}x maxStateBytes and takes an explicit limit`, () => {
    expect(metadataBytesLimit(L)).toBe(METADATA_BYTES_PER_STATE_BYTE * 8192)
    expect(metadataBytesLimit({ ...L, maxMetadataBytes: 1000 })).toBe(1000)
  })

  it('refuses with 413 an 8 KB array whose per-element metadata would pass the limit', () => {
    const list = Array.from({ length: 4000 }, () => 1)
    expect(stateBytes({ reported: { list } })).toBeLessThanOrEqual(L.maxStateBytes)
    const out = applyUpdate(null, null, { state: { reported: { list } } }, T0, L)
    expect(out).toStrictEqual({ ok: false, error: { code: 413, message: 'The payload exceeds the maximum size allowed' } })
  })

  it('accepts an object-only document at the state limit: its metadata always fits', () => {
    const reported = Object.fromEntries(Array.from({ length: 1170 }, (_, i) => [i.toString(36).padStart(2, '0'), 1]))
    expect(stateBytes({ reported })).toBeGreaterThan(8000)
    const doc = created({ reported })
    expect(metadataBytes(doc.metadata)).toBeGreaterThan(4 * 8192)
  })

  it('measures the merged metadata: growth by later updates is refused too', () => {
    const limits = { ...L, maxMetadataBytes: 2000 }
    let doc: ShadowDocument | null = null
    let refusedAt = -1
    for (let i = 0; i < 100 && refusedAt < 0; i++) {
      const out = applyUpdate(doc, null, { state: { reported: { [`k${i}`]: 1 } } }, T0, limits)
      if (out.ok) doc = out.document
      else refusedAt = i
    }
    expect(refusedAt).toBeGreaterThan(0)
    expect(metadataBytes((doc as ShadowDocument).metadata)).toBeLessThanOrEqual(2000)
  })
})
