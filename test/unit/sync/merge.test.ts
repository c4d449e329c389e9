import { describe, expect, it } from 'vitest'
import {
  diffNode, mergeNode, mergeStates, resolveDocument, stateOf, statePatch, statesEqual,
} from '../../../coordinator/sync/index.js'
import { applyUpdate, DEFAULT_SHADOW_LIMITS, type ShadowDocument, type ShadowState } from '../../../coordinator/protocol/index.js'

describe('mergeNode: one field, three versions', () => {
  it('takes the value of the only side that changed it', () => {
    expect(mergeNode(1, 2, 1, 'cloud')).toBe(2)
    expect(mergeNode(1, 1, 3, 'local')).toBe(3)
  })

  it('keeps a value nobody changed', () => {
    expect(mergeNode('on', 'on', 'on', 'local')).toBe('on')
  })

  it('gives a field changed on both sides to its owner', () => {
    expect(mergeNode(1, 2, 3, 'local')).toBe(2)
    expect(mergeNode(1, 2, 3, 'cloud')).toBe(3)
  })

  it('treats the same change made on both sides as no conflict', () => {
    expect(mergeNode(1, 5, 5, 'local')).toBe(5)
  })

  it('compares numbers by value', () => {
    expect(mergeNode(1.0, 1, 2, 'local')).toBe(2)
    expect(mergeNode(0, -0, 7, 'local')).toBe(7)
  })

  it('treats arrays as atomic values, never merging their elements', () => {
    expect(mergeNode([1, 2], [1, 2, 3], [0, 1, 2], 'cloud')).toEqual([0, 1, 2])
    expect(mergeNode([1, 2], [1, 2, 3], [0, 1, 2], 'local')).toEqual([1, 2, 3])
    expect(mergeNode([1, 2], [1, 2], [2, 1], 'local')).toEqual([2, 1])
  })

  it('treats a key removed on one side and untouched on the other as removed', () => {
    expect(mergeNode(1, undefined, 1, 'cloud')).toBeUndefined()
    expect(mergeNode(1, 1, undefined, 'local')).toBeUndefined()
  })

  it('gives a key removed on one side and changed on the other to its owner', () => {
    expect(mergeNode(1, undefined, 2, 'local')).toBeUndefined()
    expect(mergeNode(1, undefined, 2, 'cloud')).toBe(2)
  })

  it('treats null like an absent key, since documents never hold null', () => {
    expect(mergeNode(1, null, 1, 'cloud')).toBeUndefined()
    expect(mergeNode(null, 4, null, 'cloud')).toBe(4)
  })

  it('adds keys created on either side', () => {
    expect(mergeNode(undefined, 'x', undefined, 'cloud')).toBe('x')
    expect(mergeNode(undefined, undefined, 'y', 'local')).toBe('y')
  })
})

describe('mergeNode: nested objects are merged key by key', () => {
  it('combines changes to different keys of one object', () => {
    const base = { led: { r: 0, g: 0, b: 0 }, mode: 'auto' }
    expect(mergeNode(base, { led: { r: 9, g: 0, b: 0 }, mode: 'auto' }, { led: { r: 0, g: 0, b: 7 }, mode: 'manual' }, 'cloud'))
      .toEqual({ led: { r: 9, g: 0, b: 7 }, mode: 'manual' })
  })

  it('resolves a conflict deep inside an object by owner, leaving its siblings merged', () => {
    const base = { a: { b: { c: 1, d: 1 } } }
    const local = { a: { b: { c: 2, d: 5 } } }
    const cloud = { a: { b: { c: 3, d: 1 } } }
    expect(mergeNode(base, local, cloud, 'local')).toEqual({ a: { b: { c: 2, d: 5 } } })
    expect(mergeNode(base, local, cloud, 'cloud')).toEqual({ a: { b: { c: 3, d: 5 } } })
  })

  it('merges per key when one side dropped the whole object and the other changed a key in it', () => {
    const base = { x: 1, y: 1 }
    expect(mergeNode(base, undefined, { x: 1, y: 2 }, 'cloud')).toEqual({ y: 2 })
    expect(mergeNode(base, undefined, { x: 1, y: 2 }, 'local')).toBeUndefined()
  })

  it('drops an object all of whose keys were removed', () => {
    expect(mergeNode({ a: 1 }, {}, { a: 1 }, 'cloud')).toBeUndefined()
  })

  it('merges objects created on both sides as if the base were empty', () => {
    expect(mergeNode(undefined, { a: 1, b: 2 }, { a: 1, b: 3, c: 4 }, 'local')).toEqual({ a: 1, b: 2, c: 4 })
  })

  it('decides a type change (object against scalar) as one leaf', () => {
    expect(mergeNode({ a: 1 }, 5, { a: 2 }, 'local')).toBe(5)
    expect(mergeNode({ a: 1 }, 5, { a: 2 }, 'cloud')).toEqual({ a: 2 })
    expect(mergeNode({ a: 1 }, 5, { a: 1 }, 'cloud')).toBe(5)
    expect(mergeNode(5, undefined, { a: 1 }, 'local')).toBeUndefined()
    expect(mergeNode(5, { a: 1 }, { a: 2, b: 1 }, 'local')).toEqual({ a: 1, b: 1 })
  })

  it('never returns objects shared with its inputs', () => {
    const cloud = { a: { deep: [1] } }
    const out = mergeNode(undefined, undefined, cloud, 'local') as { a: { deep: number[] } }
    out.a.deep.push(2)
    expect(cloud.a.deep).toEqual([1])
  })

  it('treats keys such as __proto__ as data', () => {
    const local = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>
    const out = mergeNode(undefined, local as never, undefined, 'local') as Record<string, unknown>
    expect(Object.hasOwn(out, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>)['x']).toBeUndefined()
  })
})

describe('mergeStates: desired belongs to the cloud, reported to the coordinator', () => {
  const base: ShadowState = { desired: { temp: 20, fan: 'auto' }, reported: { temp: 19, fan: 'auto' } }

  it('resolves conflicts by section owner and keeps one-sided changes from both', () => {
    const local: ShadowState = { desired: { temp: 18, fan: 'auto' }, reported: { temp: 21, fan: 'low' } }
    const cloud: ShadowState = { desired: { temp: 22, fan: 'high' }, reported: { temp: 25, fan: 'auto' } }
    expect(mergeStates(base, local, cloud)).toEqual({
      desired: { temp: 22, fan: 'high' },
      reported: { temp: 21, fan: 'low' },
    })
  })

  it('drops a section emptied by the merge', () => {
    const local: ShadowState = { reported: base.reported! }
    expect(mergeStates(base, local, base)).toEqual({ reported: base.reported })
  })

  it('on a first sync (no base), unions both sides and lets owners win differences', () => {
    const local: ShadowState = { desired: { a: 1 }, reported: { a: 1, only: 'local' } }
    const cloud: ShadowState = { desired: { a: 2, only: 'cloud' }, reported: { a: 2 } }
    expect(mergeStates(null, local, cloud)).toEqual({ desired: { a: 2, only: 'cloud' }, reported: { a: 1, only: 'local' } })
  })
})

describe('resolveDocument: deletes and directions', () => {
  const base: ShadowState = { reported: { on: true } }
  const changed: ShadowState = { reported: { on: false } }

  it('keeps a shadow absent on both sides absent', () => {
    expect(resolveDocument('both', base, null, null)).toBeNull()
    expect(resolveDocument('both', null, null, null)).toBeNull()
  })

  it('deletes on the other side a shadow deleted on one side and unchanged on the other', () => {
    expect(resolveDocument('both', base, null, base)).toBeNull()
    expect(resolveDocument('both', base, base, null)).toBeNull()
  })

  it('recreates a shadow deleted on one side and changed on the other, as the changed side has it', () => {
    expect(resolveDocument('both', base, null, changed)).toEqual(changed)
    expect(resolveDocument('both', base, changed, null)).toEqual(changed)
  })

  it('copies a shadow that exists on one side only and was never synced', () => {
    expect(resolveDocument('both', null, changed, null)).toEqual(changed)
    expect(resolveDocument('both', null, null, changed)).toEqual(changed)
  })

  it('merges a shadow that exists on both sides', () => {
    const local: ShadowState = { reported: { on: true, level: 3 } }
    expect(resolveDocument('both', base, local, changed)).toEqual({ reported: { on: false, level: 3 } })
  })

  it("to-cloud: the coordinator's document wins everywhere, a delete included", () => {
    expect(resolveDocument('to-cloud', base, changed, { desired: { x: 1 }, reported: { on: true } })).toEqual(changed)
    expect(resolveDocument('to-cloud', base, null, changed)).toBeNull()
  })

  it("from-cloud: the cloud's document wins everywhere, a delete included", () => {
    expect(resolveDocument('from-cloud', base, changed, { desired: { x: 1 } })).toEqual({ desired: { x: 1 } })
    expect(resolveDocument('from-cloud', base, changed, null)).toBeNull()
  })
})

describe('statePatch: the update that turns one state into another', () => {
  const doc = (state: ShadowState): ShadowDocument => ({ state, metadata: {}, version: 1 })
  const apply = (from: ShadowState, to: ShadowState): ShadowState => {
    const out = applyUpdate(doc(from), null, { state: statePatch(from, to) }, 0, DEFAULT_SHADOW_LIMITS)
    if (!out.ok) throw new Error(out.error.message)
    return out.document.state
  }

  it('sends changed leaves, nulls for removed keys and whole arrays', () => {
    const from: ShadowState = { desired: { a: 1, b: { c: 1, d: [1, 2] } }, reported: { gone: 1 } }
    const to: ShadowState = { desired: { a: 1, b: { c: 2, d: [2] }, e: 'new' } }
    expect(statePatch(from, to)).toEqual({ desired: { b: { c: 2, d: [2] }, e: 'new' }, reported: null })
  })

  it('is empty when nothing differs', () => {
    expect(statePatch({ desired: { a: [1] } }, { desired: { a: [1] } })).toEqual({})
    expect(diffNode({ a: 1 }, { a: 1 })).toBeUndefined()
  })

  it('replaces a scalar with an object and an object with a scalar', () => {
    expect(diffNode({ a: 1 }, { a: { b: 1 } })).toEqual({ a: { b: 1 } })
    expect(diffNode({ a: { b: 1 } }, { a: 1 })).toEqual({ a: 1 })
  })

  it('produces exactly the target when applied by the shadow engine', () => {
    const cases: Array<[ShadowState, ShadowState]> = [
      [{ desired: { a: 1, b: { c: 1, d: 2 } } }, { desired: { b: { d: 3 } }, reported: { x: [1, { y: 2 }] } }],
      [{ reported: { a: { b: { c: 1 } } } }, { reported: { a: 7 } }],
      [{ desired: { a: 1 } }, {}],
    ]
    for (const [from, to] of cases) expect(statesEqual(apply(from, to), to)).toBe(true)
  })

  it('creates a whole document from nothing', () => {
    expect(statePatch(null, { reported: { a: 1 } })).toEqual({ reported: { a: 1 } })
  })
})

describe('stateOf and statesEqual', () => {
  it('keeps only desired and reported from a reply, without empty sections', () => {
    expect(stateOf({ state: { desired: { a: 1 }, reported: {}, delta: { a: 1 } }, version: 3 })).toEqual({ desired: { a: 1 } })
    expect(stateOf({ code: 404 })).toEqual({})
  })

  it('tells a missing document from an empty one', () => {
    expect(statesEqual(null, {})).toBe(false)
    expect(statesEqual(null, null)).toBe(true)
    expect(statesEqual({ desired: { a: 1 } }, { desired: { a: 1.0 } })).toBe(true)
  })
})
