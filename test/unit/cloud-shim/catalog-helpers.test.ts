import { describe, expect, it } from 'vitest'
import { compareVersions, parseRange } from '../../../cloud-shim/catalog/index.js'

describe('byte ranges for resumable downloads', () => {
  it.each([
    [undefined, { kind: 'full' }],
    ['bytes=100-', { kind: 'partial', start: 100, end: 999 }],
    ['bytes=0-99', { kind: 'partial', start: 0, end: 99 }],
    ['bytes=900-5000', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=-100', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=1000-', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=5-1', { kind: 'full' }],
    ['bytes=0-1,5-6', { kind: 'full' }],
    ['items=0-1', { kind: 'full' }],
  ])('should read %j of a 1000-byte file as %j', (header, expected) => {
    expect(parseRange(header, 1000)).toEqual(expected)
  })
})

describe('semantic version order', () => {
  it('should sort versions by semver precedence, pre-releases below their release', () => {
    const versions = ['1.0.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '0.9.9', '1.10.0', '1.2.0', '1.0.0-alpha.beta']
    expect([...versions].sort(compareVersions)).toEqual([
      '0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0', '1.10.0',
    ])
  })
})
