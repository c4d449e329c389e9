/**
 * The few MQTT 3.1.1 topic rules the cloud link needs (section 4.7). The broker has its own, fuller
 * copy in broker/topic-filter.ts; cloud and broker are siblings on one layer and do not import each
 * other, so the link keeps this small pure subset.
 */

const MAX_TOPIC_BYTES = 65_535

/** A lone surrogate has no UTF-8 encoding at all [MQTT-1.5.3-1]. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function isEncodable(s: string): boolean {
  return s.length > 0 && !s.includes('\u0000') && !LONE_SURROGATE.test(s) && Buffer.byteLength(s, 'utf8') <= MAX_TOPIC_BYTES
}

/** Non-empty, no NUL, no wildcard, encodable in UTF-8 within the 16-bit length prefix. */
export function isValidTopicName(topic: string): boolean {
  return isEncodable(topic) && !topic.includes('+') && !topic.includes('#')
}

/** '#' only as the whole last level, '+' only as a whole level. */
export function isValidTopicFilter(filter: string): boolean {
  if (!isEncodable(filter)) return false
  const levels = filter.split('/')
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1
    if (level.includes('+')) return level === '+'
    return true
  })
}

/** Whether `topic` matches `filter`; topics starting with '$' never match a leading wildcard [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false
  }
  return f.length === t.length
}
