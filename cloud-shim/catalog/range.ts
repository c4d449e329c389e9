/**
 * HTTP byte ranges (RFC 9110 §14) for bundle downloads, so a coordinator on a bad link resumes
 * where it stopped. One range per request: a multi-range request gets the whole file (§14.2
 * lets a server ignore Range), which a resuming client never sends anyway.
 */
export type ByteRange =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' }

const SPEC = /^bytes=(\d*)-(\d*)$/

/** `header` is the Range header; `size` the file's length. Malformed ranges are ignored (§14.2). */
export function parseRange(header: string | undefined, size: number): ByteRange {
  const m = header === undefined ? null : SPEC.exec(header.trim())
  if (m === null) return { kind: 'full' }
  const [, first = '', last = ''] = m
  if (first === '' && last === '') return { kind: 'full' }
  if (first === '') {
    // Suffix range: the last N bytes.
    const n = Number(last)
    return n === 0 || size === 0 ? { kind: 'unsatisfiable' } : { kind: 'partial', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? Number.MAX_SAFE_INTEGER : Number(last)
  if (end < start) return { kind: 'full' }
  if (start >= size) return { kind: 'unsatisfiable' }
  return { kind: 'partial', start, end: Math.min(end, size - 1) }
}
