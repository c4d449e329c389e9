import { describe, expect, it } from 'vitest'
import type { Identity } from '../../../coordinator/broker/identity.js'
import { storedWillOwner, WILL_OWNER_FIELD, willOwnerOf } from '../../../coordinator/broker/wills.js'

const identity: Identity = {
  principal: { thingName: 'lamp-1', attributes: { room: 'hall' }, policies: ['extra'] },
  method: 'token',
  credential: 'scrypt$hash',
}

describe('will owners', () => {
  it('round-trips the identity and policies stored with a will', () => {
    const will = { topic: 'things/lamp-1/status', [WILL_OWNER_FIELD]: willOwnerOf(identity) }
    expect(storedWillOwner(will)).toEqual(identity)
  })

  it('is a copy: changing the stored owner later does not change the identity', () => {
    const owner = willOwnerOf(identity)
    owner.policies.push('more')
    expect(identity.principal.policies).toEqual(['extra'])
  })

  it.each([
    ['no owner (a will stored by an older version)', {}],
    ['an owner that is not an object', { [WILL_OWNER_FIELD]: 'lamp-1' }],
    ['an unknown method', { [WILL_OWNER_FIELD]: { ...willOwnerOf(identity), method: 'root' } }],
    ['policies that are not strings', { [WILL_OWNER_FIELD]: { ...willOwnerOf(identity), policies: [1] } }],
    ['attributes that are not strings', { [WILL_OWNER_FIELD]: { ...willOwnerOf(identity), attributes: { a: 1 } } }],
    ['a credential that is not a string', { [WILL_OWNER_FIELD]: { ...willOwnerOf(identity), credential: 7 } }],
  ])('trusts no owner for %s', (_what, will) => {
    expect(storedWillOwner(will)).toBeUndefined()
  })
})
