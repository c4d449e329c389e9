/**
 * MQTT 3.1.1 topic names and topic filters (section 4.7), as pure string logic.
 *
 * No I/O and no Node globals (not even Buffer), so the broker hooks and the task sandbox can share it.
 * Every function answers `false` for malformed input instead of throwing: callers sit on
 * authorization paths, where "no" is the safe answer.
 */

/** [MQTT-4.7.3-3]: topics are UTF-8 strings with a 16-bit length prefix. */
const MAX_TOPIC_BYTES = 65_535

/**
 * UTF-8 length of `s`, or undefined when `s` holds an unpaired surrogate: such a string has no
 * UTF-8 encoding at all [MQTT-1.5.3-1].
 */
function utf8ByteLength(s: string): number | undefined {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xdc00 && unit <= 0xdfff) return undefined
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const low = s.charCodeAt(i + 1)
      if (!(low >= 0xdc00 && low <= 0xdfff)) return undefined
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/** Rules shared by names and filters: [MQTT-4.7.3-1] non-empty, [MQTT-4.7.3-2] no NUL, [MQTT-4.7.3-3] size. */
function isEncodableTopic(s: string): boolean {
  if (s.length === 0 || s.includes('\u0000')) return false
  const bytes = utf8ByteLength(s)
  return bytes !== undefined && bytes <= MAX_TOPIC_BYTES
}

/** A topic name as a client may PUBLISH it: wildcards are filter-only [MQTT-4.7.1-1]. */
export function isValidTopicName(topic: string): boolean {
  return isEncodableTopic(topic) && !topic.includes('+') && !topic.includes('#')
}

/**
 * '#' must stand alone in the last level [MQTT-4.7.1-2]; '+' must fill a whole level [MQTT-4.7.1-3].
 * Empty levels are legal ('a//b', '/a').
 */
function isValidFilterLevel(level: string, isLast: boolean): boolean {
  if (level.includes('#')) return level === '#' && isLast
  if (level.includes('+')) return level === '+'
  return true
}

export function isValidTopicFilter(filter: string): boolean {
  if (!isEncodableTopic(filter)) return false
  const levels = filter.split('/')
  return levels.every((level, i) => isValidFilterLevel(level, i === levels.length - 1))
}

/** [MQTT-4.7.2-1]: such filters never match topic names that begin with '$'. */
function startsWithWildcard(filter: string): boolean {
  return filter.startsWith('+') || filter.startsWith('#')
}

/**
 * Whether `filter` matches topic name `topic`, byte-for-byte with no normalization [MQTT-4.7.3-4].
 * '#' also matches the parent level: 'sport/#' matches 'sport' (section 4.7.1.2).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (!isValidTopicFilter(filter) || !isValidTopicName(topic)) return false
  if (startsWithWildcard(filter) && topic.startsWith('$')) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/**
 * '#' also matches its parent level, but the parent of a '#' in level 1 may not be a topic:
 * topics have at least one level, and the empty string is not a topic [MQTT-4.7.3-1]. So
 * '+/#' matches exactly what '#' does, and '/#' exactly what '/+/#' does. Rewriting those two to
 * the second spelling leaves every '#' with a real parent, which the level-by-level walk in
 * filterCovers assumes.
 */
function canonicalLevels(filter: string): string[] {
  if (filter === '+/#') return ['#']
  if (filter === '/#') return ['', '+', '#']
  return filter.split('/')
}

/**
 * True iff every topic matched by `requested` is matched by `granted`, so a client granted
 * `granted` may hold a subscription to `requested` without ever receiving a topic outside its grant.
 */
export function filterCovers(granted: string, requested: string): boolean {
  if (!isValidTopicFilter(granted) || !isValidTopicFilter(requested)) return false
  // A request that starts with a '$' literal matches only '$' topics, which a grant starting with a
  // wildcard never matches [MQTT-4.7.2-1].
  if (startsWithWildcard(granted) && requested.startsWith('$')) return false
  const g = canonicalLevels(granted)
  const r = canonicalLevels(requested)
  for (let i = 0; ; i++) {
    const grantedLevel = g[i]
    const requestedLevel = r[i]
    // The requested levels walked so far are each matched by the grant, and '#' takes any rest, parent included.
    if (grantedLevel === '#') return true
    if (grantedLevel === undefined || requestedLevel === undefined) return grantedLevel === requestedLevel
    // The request reaches arbitrarily deep (and the parent); a grant without '#' here does not.
    if (requestedLevel === '#') return false
    if (grantedLevel !== '+' && grantedLevel !== requestedLevel) return false
  }
}
