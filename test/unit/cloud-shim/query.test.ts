import { describe, expect, it } from 'vitest'
import { compileQuery, QueryError, type QueryTarget } from '../../../cloud-shim/registry/index.js'
import { MAX_QUERY_DEPTH, MAX_QUERY_LENGTH } from '../../../cloud-shim/registry/query.js'

const thing = (over: Partial<QueryTarget> = {}): QueryTarget => ({
  name: 'hub-1', kind: 'coordinator', coordinator: null, attributes: { site: 'north', memoryMb: '1024', floor: '02' }, tags: ['gpio', 'arch=arm64'], ...over,
})

const matches = (q: string, t: QueryTarget = thing()): boolean => compileQuery(q).matches(t)

function errorOf(q: string): QueryError {
  try {
    compileQuery(q)
  } catch (err) {
    if (err instanceof QueryError) return err
    throw err
  }
  throw new Error(`query ${q} parsed`)
}

describe('group query language', () => {
  it("should keep what a coordinator reported apart: operator fields never see it, reported.* fields only see it", () => {
    const t = thing({ reported: { attributes: { site: 'south', memoryMb: '4096' }, tags: ['camera'] } })
    expect(matches('attributes.site = "south"', t)).toBe(false)
    expect(matches('tags HAS camera', t)).toBe(false)
    expect(matches('reported.attributes.site = "south"', t)).toBe(true)
    expect(matches('reported.attributes.memoryMb > 2048 AND reported.tags HAS camera', t)).toBe(true)
    expect(matches('reported.tags HAS gpio', t)).toBe(false)
    expect(matches('reported.attributes.site EXISTS')).toBe(false)
    expect(errorOf('reported.site = x').message).toMatch(/unknown field 'reported\.site'.*reported\.attributes\.<key>/)
    expect(errorOf('reported.tags = x').message).toMatch(/expected HAS after 'reported\.tags'/)
  })

  it('should compare attributes as strings, or as numbers when the value is written as a number', () => {
    expect(matches('attributes.site = "north"')).toBe(true)
    expect(matches("attributes.site = 'south'")).toBe(false)
    expect(matches('attributes.site = north')).toBe(true)
    expect(matches('attributes.memoryMb >= 512')).toBe(true)
    expect(matches('attributes.memoryMb < 512')).toBe(false)
    expect(matches('attributes.floor = 2')).toBe(true)
    expect(matches('attributes.floor = "2"')).toBe(false)
  })

  it('should be false for ordering on a missing or non-numeric attribute, and != should hold for a missing one', () => {
    expect(matches('attributes.missing > 1')).toBe(false)
    expect(matches('attributes.site > 1')).toBe(false)
    expect(matches('attributes.missing != "x"')).toBe(true)
    expect(matches('attributes.site != "north"')).toBe(false)
  })

  it('should test tags with HAS (quoted when they hold =) and fields with EXISTS', () => {
    expect(matches('tags HAS gpio')).toBe(true)
    expect(matches('tags HAS camera')).toBe(false)
    expect(matches('tags HAS "arch=arm64"')).toBe(true)
    expect(matches('attributes.site EXISTS')).toBe(true)
    expect(matches('coordinator EXISTS')).toBe(false)
    expect(matches('coordinator = hub-1', thing({ name: 'lamp', kind: 'device', coordinator: 'hub-1' }))).toBe(true)
    expect(matches('kind = coordinator AND name = "hub-1"')).toBe(true)
  })

  it('should bind NOT tighter than AND, and AND tighter than OR, with parentheses to override', () => {
    expect(matches('tags HAS camera AND tags HAS gpio OR attributes.site = north')).toBe(true)
    expect(matches('tags HAS camera AND (tags HAS gpio OR attributes.site = north)')).toBe(false)
    expect(matches('NOT tags HAS camera AND tags HAS gpio')).toBe(true)
    expect(matches('NOT (tags HAS gpio AND attributes.site = north)')).toBe(false)
    expect(matches('not tags has camera and attributes.memoryMb >= 512 or attributes.nothing exists')).toBe(true)
  })

  it('should parse the example from the documentation', () => {
    expect(matches('attributes.site = "north" AND tags HAS gpio AND attributes.memoryMb >= 512')).toBe(true)
  })

  it.each([
    ['', 0, 'empty query'],
    ['attributes.site =', 17, "expected a value after '='"],
    ['attributes.site = "north', 18, 'unterminated string'],
    ['site = "north"', 0, "unknown field 'site'"],
    ['attributes.site "north"', 16, 'expected an operator'],
    ['tags gpio', 5, 'expected HAS'],
    ['(tags HAS gpio', 14, "expected ')' to close the '(' at position 0"],
    ['tags HAS gpio tags HAS camera', 14, 'expected AND, OR or the end'],
    ['attributes.memoryMb >= big', 23, "'>=' compares numbers"],
    ['tags HAS gpio AND', 17, 'expected a condition'],
    ['tags HAS AND', 9, 'expected a value'],
    ['attributes.a = 1 & tags HAS x', 17, "unexpected character \"&\""],
  ])('should refuse %j at position %i (%s)', (query, position, text) => {
    const err = errorOf(query)
    expect(err.position).toBe(position)
    expect(err.code).toBe('COORD_REGISTRY_QUERY_INVALID')
    expect(err.message).toContain(`at position ${position}`)
    expect(err.message).toContain(text)
  })

  it('should refuse nesting deeper than the bound with a QueryError, not a stack overflow', () => {
    const nested = (n: number): string => `${'('.repeat(n)}name = a${')'.repeat(n)}`
    expect(matches(nested(MAX_QUERY_DEPTH))).toBe(false)
    expect(errorOf(nested(MAX_QUERY_DEPTH + 1))).toMatchObject({ code: 'COORD_REGISTRY_QUERY_INVALID', position: MAX_QUERY_DEPTH, message: expect.stringContaining(`deeper than ${MAX_QUERY_DEPTH} levels`) })
    expect(errorOf(`${'NOT '.repeat(MAX_QUERY_DEPTH + 1)}name = a`).message).toContain('deeper than')
    // What used to overflow the stack: a query as long as an HTTP body may be.
    expect(errorOf('('.repeat(200_000)).code).toBe('COORD_REGISTRY_QUERY_INVALID')
    expect(errorOf(`${'name = a AND '.repeat(20_000)}name = a`).message).toContain(`the limit is ${MAX_QUERY_LENGTH}`)
  })
})
