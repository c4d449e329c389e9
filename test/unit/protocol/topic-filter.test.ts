import { describe, it, expect } from 'vitest'
import {
  filterCovers,
  isValidTopicFilter,
  isValidTopicName,
  topicMatches,
} from '../../../coordinator/protocol/topic-filter.js'

describe('isValidTopicName', () => {
  it.each(['a', 'sport/tennis/player1', '/', '//', '/finance', 'a//b', 'Accounts payable', '$SYS/x', 'é/日本/🎾'])(
    'accepts %j',
    (topic) => {
      expect(isValidTopicName(topic)).toBe(true)
    },
  )

  it.each(['', 'a/+', '+', 'a/#', '#', 'sport+', 'a/b#', 'a\u0000b'])('rejects %j (empty, wildcard or NUL)', (topic) => {
    expect(isValidTopicName(topic)).toBe(false)
  })

  it('accepts exactly 65535 UTF-8 bytes and rejects one more', () => {
    expect(isValidTopicName('a'.repeat(65_535))).toBe(true)
    expect(isValidTopicName('a'.repeat(65_536))).toBe(false)
  })

  it('counts UTF-8 bytes, not UTF-16 code units', () => {
    // 'é' is 2 bytes, '日' 3 bytes, '🎾' 4 bytes (2 code units).
    expect(isValidTopicName('é'.repeat(32_767) + 'a')).toBe(true)
    expect(isValidTopicName('é'.repeat(32_768))).toBe(false)
    expect(isValidTopicName('日'.repeat(21_845))).toBe(true)
    expect(isValidTopicName('日'.repeat(21_845) + 'a')).toBe(false)
    expect(isValidTopicName('🎾'.repeat(16_383) + 'abc')).toBe(true)
    expect(isValidTopicName('🎾'.repeat(16_384))).toBe(false)
  })

  it('rejects unpaired surrogates, which have no UTF-8 encoding', () => {
    expect(isValidTopicName('a\ud800')).toBe(false)
    expect(isValidTopicName('\udc00a')).toBe(false)
    expect(isValidTopicName('\ud800\ud800')).toBe(false)
  })
})

describe('isValidTopicFilter', () => {
  it.each(['sport/tennis/#', '#', 'sport/#', '+', '+/tennis/#', 'sport/+/player1', '+/+', '/+', '/', '$SYS/#', 'a//b', '+/#'])(
    'accepts %j',
    (filter) => {
      expect(isValidTopicFilter(filter)).toBe(true)
    },
  )

  it.each([
    ['', 'empty'],
    ['sport/tennis#', "'#' sharing a level"],
    ['sport/tennis/#/ranking', "'#' not last"],
    ['#/a', "'#' not last"],
    ['##', "'#' sharing a level"],
    ['sport+', "'+' sharing a level"],
    ['sport/+a/x', "'+' sharing a level"],
    ['++', "'+' sharing a level"],
    ['a/\u0000', 'NUL'],
    ['a\ud800', 'unpaired surrogate'],
  ])('rejects %j (%s)', (filter) => {
    expect(isValidTopicFilter(filter)).toBe(false)
  })

  it('enforces the 65535-byte limit', () => {
    expect(isValidTopicFilter('a'.repeat(65_533) + '/#')).toBe(true)
    expect(isValidTopicFilter('a'.repeat(65_534) + '/#')).toBe(false)
  })
})

describe('topicMatches', () => {
  describe("multi-level wildcard '#' (spec 4.7.1.2)", () => {
    it.each(['sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player1/score/wimbledon'])(
      "'sport/tennis/player1/#' matches %j, including the parent level",
      (topic) => {
        expect(topicMatches('sport/tennis/player1/#', topic)).toBe(true)
      },
    )

    it("'sport/#' matches 'sport' itself", () => {
      expect(topicMatches('sport/#', 'sport')).toBe(true)
    })

    it("'#' matches every topic that does not start with '$'", () => {
      for (const topic of ['a', '/', 'a/b/c', '/finance', 'x$']) expect(topicMatches('#', topic)).toBe(true)
    })

    it("'sport/tennis/#' does not match a sibling or a shorter prefix", () => {
      expect(topicMatches('sport/tennis/#', 'sport/golf')).toBe(false)
      expect(topicMatches('sport/tennis/#', 'sport')).toBe(false)
    })
  })

  describe("single-level wildcard '+' (spec 4.7.1.3)", () => {
    it("'sport/tennis/+' matches exactly one more level", () => {
      expect(topicMatches('sport/tennis/+', 'sport/tennis/player1')).toBe(true)
      expect(topicMatches('sport/tennis/+', 'sport/tennis/player2')).toBe(true)
      expect(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking')).toBe(false)
    })

    it("'sport/+' does not match 'sport' but matches the empty level in 'sport/'", () => {
      expect(topicMatches('sport/+', 'sport')).toBe(false)
      expect(topicMatches('sport/+', 'sport/')).toBe(true)
    })

    it("treats a leading '/' as an empty first level", () => {
      expect(topicMatches('+/+', '/finance')).toBe(true)
      expect(topicMatches('/+', '/finance')).toBe(true)
      expect(topicMatches('+', '/finance')).toBe(false)
    })

    it("'+/tennis/#' combines both wildcards", () => {
      expect(topicMatches('+/tennis/#', 'sport/tennis')).toBe(true)
      expect(topicMatches('+/tennis/#', 'sport/tennis/player1/ranking')).toBe(true)
      expect(topicMatches('+/tennis/#', 'sport/golf/x')).toBe(false)
    })
  })

  describe("topics beginning with '$' [MQTT-4.7.2-1]", () => {
    it("'#' does not match '$SYS/...'", () => {
      expect(topicMatches('#', '$SYS/monitor/Clients')).toBe(false)
      expect(topicMatches('#', '$SYS')).toBe(false)
    })

    it("'+/monitor/Clients' does not match '$SYS/monitor/Clients'", () => {
      expect(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients')).toBe(false)
      expect(topicMatches('+/#', '$aws/things/x')).toBe(false)
    })

    it("filters that start with '$SYS' match '$SYS' topics", () => {
      expect(topicMatches('$SYS/#', '$SYS/monitor/Clients')).toBe(true)
      expect(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients')).toBe(true)
    })

    it("only the first level is special: '+' matches a later level beginning with '$'", () => {
      expect(topicMatches('a/+', 'a/$b')).toBe(true)
      expect(topicMatches('a/#', 'a/$b/c')).toBe(true)
    })
  })

  describe('no normalization [MQTT-4.7.3-4]', () => {
    it('is case-sensitive and keeps spaces and empty levels significant', () => {
      expect(topicMatches('ACCOUNTS', 'Accounts')).toBe(false)
      expect(topicMatches('Accounts payable', 'Accounts payable')).toBe(true)
      expect(topicMatches('a/b', 'a//b')).toBe(false)
      expect(topicMatches('a/b', 'a/b/')).toBe(false)
      expect(topicMatches('a/+/b', 'a//b')).toBe(true)
    })
  })

  it('answers false instead of throwing for an invalid filter or topic', () => {
    expect(topicMatches('a/#/b', 'a/x/b')).toBe(false)
    expect(topicMatches('a/+', 'a/+')).toBe(false)
    expect(topicMatches('#', '')).toBe(false)
    expect(topicMatches('', '')).toBe(false)
  })
})

describe('filterCovers', () => {
  it.each([
    ['things/a/#', 'things/a/+/x', true],
    ['things/a/#', 'things/a', true],
    ['things/a/#', 'things/a/#', true],
    ['things/a/#', 'things/a/b/c/d', true],
    ['things/a/#', 'things/+/x', false],
    ['things/a/#', 'things/#', false],
    ['things/a/#', 'things', false],
    ['a/#', 'a', true],
    ['a/+', 'a', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a/+/#', 'a/#', false],
    ['a/+/#', 'a/b', true],
    ['+/x', '#', false],
    ['+', '#', false],
    ['#', '#', true],
    ['#', '+/+/x', true],
    ['+/#', '#', true],
    ['#', '+/#', true],
    ['+/+/#', '+/#', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['+/#', '$SYS', false],
    ['$SYS/#', '$SYS/broker/+', true],
    ['$SYS/#', '$SYS', true],
    ['$SYS/+', '+/x', false],
    ['$aws/things/me/shadow/#', '$aws/things/me/shadow/update/accepted', true],
    ['$aws/things/me/shadow/#', '$aws/things/+/shadow/update/accepted', false],
    ['$aws/things/me/shadow/#', '$aws/#', false],
    ['/+', '/x', true],
    ['+/+', '/x', true],
    ['+', '/x', false],
    ['a/#/b', 'a/x', false],
    ['a/#', 'a/#/b', false],
  ])('filterCovers(%j, %j) is %s', (granted, requested, expected) => {
    expect(filterCovers(granted, requested)).toBe(expected)
  })
})

/**
 * Brute force over a small universe: every filter of up to 3 levels and every topic of up to 4
 * levels over a tiny alphabet (with an empty level, a '$' level, and a topic-only letter 'c' the
 * filters never mention). Within it, filterCovers must equal "r's matches are a subset of g's".
 */
describe('filterCovers against brute-force enumeration', () => {
  function words(alphabet: readonly string[], maxLevels: number): string[] {
    let layer: string[] = [...alphabet]
    const all = [...layer]
    for (let depth = 2; depth <= maxLevels; depth++) {
      layer = layer.flatMap((prefix) => alphabet.map((level) => `${prefix}/${level}`))
      all.push(...layer)
    }
    return all
  }

  const filters = words(['a', 'b', '', '$s', '+', '#'], 3).filter(isValidTopicFilter)
  const topics = words(['a', 'b', 'c', '', '$s'], 4).filter(isValidTopicName)
  const matched = new Map(filters.map((f) => [f, topics.map((t) => topicMatches(f, t))]))
  const matchesOf = (f: string): boolean[] => matched.get(f) ?? []

  it('enumerates a non-trivial universe', () => {
    expect(filters.length).toBeGreaterThan(150)
    expect(topics.length).toBeGreaterThan(700)
  })

  it('filterCovers(g, r) holds exactly when every enumerated topic matched by r is matched by g', () => {
    const mismatches: string[] = []
    for (const g of filters) {
      const mg = matchesOf(g)
      for (const r of filters) {
        const subset = matchesOf(r).every((m, i) => !m || mg[i] === true)
        if (filterCovers(g, r) !== subset) mismatches.push(`${g} ⊇ ${r}: brute force says ${subset}`)
      }
    }
    expect(mismatches).toEqual([])
  })
})
