import { describe, it, expect } from 'vitest'
import {
  SHADOW_NAME_PATTERN,
  SHADOW_OPERATIONS,
  SHADOW_REPLY_STATUSES,
  THING_NAME_PATTERN,
  isClassicShadow,
  isValidShadowName,
  isValidThingName,
  parseShadowRequestTopicLoose,
  parseShadowTopic,
  shadowTopic,
  shadowTopicPrefix,
  type ShadowRef,
} from '../../../coordinator/protocol/index.js'

const classic: ShadowRef = { thingName: 'Thermostat-1' }
const named: ShadowRef = { thingName: 'Thermostat-1', shadowName: 'config' }

const VALID_PAIRS = SHADOW_OPERATIONS.flatMap((op) => SHADOW_REPLY_STATUSES[op].map((status) => [op, status] as const))
const INVALID_PAIRS = [
  ['get', 'delta'],
  ['get', 'documents'],
  ['delete', 'delta'],
  ['delete', 'documents'],
] as const

describe('parseShadowTopic: requests', () => {
  it.each(SHADOW_OPERATIONS)('parses the classic %s request topic', (op) => {
    expect(parseShadowTopic(`$aws/things/Thermostat-1/shadow/${op}`)).toStrictEqual({ kind: 'request', ref: { thingName: 'Thermostat-1' }, operation: op })
  })

  it.each(SHADOW_OPERATIONS)('parses the named %s request topic', (op) => {
    expect(parseShadowTopic(`$aws/things/Thermostat-1/shadow/name/config/${op}`)).toStrictEqual({
      kind: 'request',
      ref: { thingName: 'Thermostat-1', shadowName: 'config' },
      operation: op,
    })
  })

  it('leaves shadowName out of the ref for the classic shadow', () => {
    const parsed = parseShadowTopic('$aws/things/T/shadow/get')
    expect(parsed?.ref).not.toHaveProperty('shadowName')
  })

  it('reads a shadow whose name is an operation word as a named shadow', () => {
    expect(parseShadowTopic('$aws/things/T/shadow/name/update/get')).toStrictEqual({ kind: 'request', ref: { thingName: 'T', shadowName: 'update' }, operation: 'get' })
  })

  it('accepts a thing called "name" on the classic shadow', () => {
    expect(parseShadowTopic('$aws/things/name/shadow/update')).toStrictEqual({ kind: 'request', ref: { thingName: 'name' }, operation: 'update' })
  })
})

describe('parseShadowTopic: replies', () => {
  it.each(VALID_PAIRS)('parses the classic %s/%s reply topic', (op, status) => {
    expect(parseShadowTopic(`$aws/things/T/shadow/${op}/${status}`)).toStrictEqual({ kind: 'reply', ref: { thingName: 'T' }, operation: op, status })
  })

  it.each(VALID_PAIRS)('parses the named %s/%s reply topic', (op, status) => {
    expect(parseShadowTopic(`$aws/things/T/shadow/name/S/${op}/${status}`)).toStrictEqual({ kind: 'reply', ref: { thingName: 'T', shadowName: 'S' }, operation: op, status })
  })

  it.each(INVALID_PAIRS)('rejects %s/%s, which the service never publishes', (op, status) => {
    expect(parseShadowTopic(`$aws/things/T/shadow/${op}/${status}`)).toBeNull()
    expect(parseShadowTopic(`$aws/things/T/shadow/name/S/${op}/${status}`)).toBeNull()
  })
})

describe('parseShadowTopic: not shadow topics', () => {
  it.each([
    ['another reserved namespace', '$aws/things/T/jobs/get'],
    ['no $aws prefix', 'things/T/shadow/get'],
    ['a misspelt things segment', '$aws/thing/T/shadow/get'],
    ['the bare shadow prefix', '$aws/things/T/shadow'],
    ['a bare named prefix', '$aws/things/T/shadow/name/S'],
    ['a named prefix with no shadow name', '$aws/things/T/shadow/name'],
    ['a named prefix with an operation but no name', '$aws/things/T/shadow/name/get'],
    ['an unknown operation', '$aws/things/T/shadow/list'],
    ['an unknown status', '$aws/things/T/shadow/update/failed'],
    ['an extra trailing segment', '$aws/things/T/shadow/update/accepted/more'],
    ['a trailing slash', '$aws/things/T/shadow/get/'],
    ['an empty thing name', '$aws/things//shadow/get'],
    ['an empty shadow name', '$aws/things/T/shadow/name//get'],
    ['a different case (topics are case sensitive)', '$aws/things/T/shadow/UPDATE'],
    ['a wildcard filter', '$aws/things/+/shadow/#'],
    ['an empty string', ''],
  ])('returns null for %s', (_what, topic) => {
    expect(parseShadowTopic(topic)).toBeNull()
  })

  it('returns null for a request with an invalid thing name', () => {
    expect(parseShadowTopic('$aws/things/bad.thing/shadow/get')).toBeNull()
    expect(parseShadowTopic(`$aws/things/${'a'.repeat(129)}/shadow/get`)).toBeNull()
  })

  it('returns null for a request with an invalid shadow name', () => {
    expect(parseShadowTopic('$aws/things/T/shadow/name/has space/get')).toBeNull()
    expect(parseShadowTopic(`$aws/things/T/shadow/name/${'s'.repeat(65)}/get`)).toBeNull()
  })

  it('returns null for a reply topic with an invalid name', () => {
    expect(parseShadowTopic('$aws/things/bad.thing/shadow/get/accepted')).toBeNull()
  })

  it('accepts names at their maximum lengths', () => {
    expect(parseShadowTopic(`$aws/things/${'a'.repeat(128)}/shadow/name/${'s'.repeat(64)}/get`)?.kind).toBe('request')
  })

  it('accepts $ in a shadow name but not in a thing name', () => {
    expect(parseShadowTopic('$aws/things/T/shadow/name/$cfg/get')?.ref).toStrictEqual({ thingName: 'T', shadowName: '$cfg' })
    expect(parseShadowTopic('$aws/things/$T/shadow/get')).toBeNull()
  })
})

describe('parseShadowRequestTopicLoose', () => {
  it('returns the raw names of a request topic even when they are invalid', () => {
    expect(parseShadowRequestTopicLoose('$aws/things/bad.thing/shadow/update')).toStrictEqual({ thingName: 'bad.thing', operation: 'update' })
    expect(parseShadowRequestTopicLoose('$aws/things/T/shadow/name/bad name/delete')).toStrictEqual({ thingName: 'T', shadowName: 'bad name', operation: 'delete' })
  })

  it('agrees with the strict parser on valid request topics', () => {
    for (const ref of [classic, named]) {
      for (const op of SHADOW_OPERATIONS) {
        const topic = shadowTopic(ref, op)
        const strict = parseShadowTopic(topic)
        expect(strict?.kind).toBe('request')
        expect(parseShadowRequestTopicLoose(topic)).toStrictEqual({ ...strict?.ref, operation: op })
      }
    }
  })

  it('returns null for reply topics and for topics that are not shaped like requests', () => {
    expect(parseShadowRequestTopicLoose('$aws/things/T/shadow/update/accepted')).toBeNull()
    expect(parseShadowRequestTopicLoose('$aws/things/T/shadow/list')).toBeNull()
    expect(parseShadowRequestTopicLoose('$aws/things//shadow/get')).toBeNull()
    expect(parseShadowRequestTopicLoose('devices/T/shadow/get')).toBeNull()
  })
})

describe('shadowTopic and shadowTopicPrefix', () => {
  it('builds the classic and named prefixes', () => {
    expect(shadowTopicPrefix(classic)).toBe('$aws/things/Thermostat-1/shadow')
    expect(shadowTopicPrefix(named)).toBe('$aws/things/Thermostat-1/shadow/name/config')
  })

  it('treats an empty shadow name as the classic shadow', () => {
    expect(isClassicShadow({ thingName: 'T', shadowName: '' })).toBe(true)
    expect(shadowTopicPrefix({ thingName: 'T', shadowName: '' })).toBe('$aws/things/T/shadow')
  })

  it('builds request and reply topics', () => {
    expect(shadowTopic(classic, 'update')).toBe('$aws/things/Thermostat-1/shadow/update')
    expect(shadowTopic(named, 'get', 'rejected')).toBe('$aws/things/Thermostat-1/shadow/name/config/get/rejected')
  })

  it('round-trips every valid topic through parseShadowTopic', () => {
    for (const ref of [classic, named]) {
      for (const [op, status] of VALID_PAIRS) {
        expect(parseShadowTopic(shadowTopic(ref, op, status))).toStrictEqual({ kind: 'reply', ref, operation: op, status })
      }
    }
  })

  it('throws on an operation/status pair the service never publishes', () => {
    for (const [op, status] of INVALID_PAIRS) expect(() => shadowTopic(classic, op, status)).toThrow(RangeError)
  })

  it('uses invalid names verbatim, so a 400 can be answered on them', () => {
    expect(shadowTopic({ thingName: 'bad.thing' }, 'get', 'rejected')).toBe('$aws/things/bad.thing/shadow/get/rejected')
  })

  it('uses exactly seven slashes for named reply topics (the IoT Core topic limit)', () => {
    expect(shadowTopic(named, 'update', 'accepted').split('/').length - 1).toBe(7)
  })
})

describe('name validation', () => {
  it('accepts thing names of 1 to 128 characters from [a-zA-Z0-9:_-]', () => {
    expect(isValidThingName('a')).toBe(true)
    expect(isValidThingName('Az09:_-')).toBe(true)
    expect(isValidThingName('a'.repeat(128))).toBe(true)
  })

  it('rejects empty, over-long or otherwise-charactered thing names', () => {
    for (const name of ['', 'a'.repeat(129), 'a.b', 'a/b', 'a b', '$a', 'a+', 'é', 'a\n']) expect(isValidThingName(name)).toBe(false)
  })

  it('accepts shadow names of 1 to 64 characters, $ included', () => {
    expect(isValidShadowName('$')).toBe(true)
    expect(isValidShadowName('s'.repeat(64))).toBe(true)
  })

  it('rejects empty, over-long or otherwise-charactered shadow names', () => {
    for (const name of ['', 's'.repeat(65), 'a.b', 'a/b', 'a#', 'a\n']) expect(isValidShadowName(name)).toBe(false)
  })

  it('exports the patterns with the documented bounds', () => {
    expect(THING_NAME_PATTERN.source).toBe('^[a-zA-Z0-9:_-]{1,128}$')
    expect(SHADOW_NAME_PATTERN.source).toBe('^[$a-zA-Z0-9:_-]{1,64}$')
  })
})
