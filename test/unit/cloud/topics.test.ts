import { describe, expect, it } from 'vitest'
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../../../coordinator/cloud/topics.js'

describe('cloud link topic rules', () => {
  it('accepts publishable names and refuses wildcards, NUL, empty and unencodable ones', () => {
    for (const ok of ['a', 'a/b', '/a', 'a//b', '$aws/things/x/shadow/update', 'ä/€']) expect(isValidTopicName(ok), ok).toBe(true)
    for (const bad of ['', 'a/#', 'a/+/b', 'a\u0000b', 'a\uD800b', 'x'.repeat(65_536)]) expect(isValidTopicName(bad), bad).toBe(false)
  })

  it('accepts filters with whole-level wildcards only', () => {
    for (const ok of ['#', '+', 'a/+/b', 'a/#', '+/+']) expect(isValidTopicFilter(ok), ok).toBe(true)
    for (const bad of ['', 'a/#/b', 'a/b#', 'a+/b', '\uDC00']) expect(isValidTopicFilter(bad), bad).toBe(false)
  })

  it('matches like an MQTT broker', () => {
    expect(topicMatches('a/+/c', 'a/b/c')).toBe(true)
    expect(topicMatches('a/+/c', 'a/b/d')).toBe(false)
    expect(topicMatches('a/#', 'a')).toBe(true)
    expect(topicMatches('a/#', 'a/b/c')).toBe(true)
    expect(topicMatches('a/b', 'a/b/c')).toBe(false)
    expect(topicMatches('a/b/c', 'a/b')).toBe(false)
    expect(topicMatches('#', '$SYS/x')).toBe(false)
    expect(topicMatches('+/x', '$aws/x')).toBe(false)
    expect(topicMatches('$aws/+', '$aws/x')).toBe(true)
  })
})
