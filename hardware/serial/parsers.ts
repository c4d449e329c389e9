/**
 * Serial line formats to reported state. A line that does not parse yields null and is skipped:
 * serial noise (a partial line at open, a glitch) must not reach the shadow.
 */
import type { JsonObject } from '../../coordinator/protocol/index.js'
import type { SerialFormat } from './backend.js'

/** Shadow keys: short identifiers, so a garbled line cannot create odd keys. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/
const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/

/** `T=21.5;H=40` (also `,` or spaces between pairs, `:` instead of `=`): numbers become numbers. */
export function parseKv(line: string): JsonObject | null {
  const out: JsonObject = {}
  for (const pair of line.trim().split(/[;,\s]+/)) {
    const m = /^([^=:]+)[=:](.*)$/.exec(pair)
    if (m === null) continue
    const [, key = '', value = ''] = m
    if (!KEY.test(key) || value === '') continue
    out[key] = NUMBER.test(value) ? Number(value) : value
  }
  return Object.keys(out).length === 0 ? null : out
}

/** One JSON object per line. */
export function parseJsonLine(line: string): JsonObject | null {
  try {
    const v: unknown = JSON.parse(line)
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : null
  } catch {
    return null
  }
}

/** The raw text, for devices whose format a task decodes itself. */
export function parseRawLine(line: string): JsonObject | null {
  const text = line.trim()
  return text === '' ? null : { line: text }
}

export const PARSERS: Readonly<Record<SerialFormat, (line: string) => JsonObject | null>> = {
  kv: parseKv,
  json: parseJsonLine,
  lines: parseRawLine,
}
