import type { Duplex } from 'node:stream'

/**
 * aedes reads once per 'readable' event with `read()`. Up to Node 24 that returns everything
 * buffered; from Node 26 it returns only the first chunk (nodejs/node#60441), so a CONNECT that
 * arrives as several WebSocket messages, or TCP data under back-pressure, waits for a next event
 * that never comes. This makes a size-less `read()` drain the whole buffer again, on every Node.
 */
export function readBuffered<T extends Duplex>(conn: T): T {
  const read = conn.read
  conn.read = function readAll(this: T, size?: number): unknown {
    if (size !== undefined && size !== null) return read.call(this, size)
    const first: unknown = read.call(this)
    if (!Buffer.isBuffer(first)) return first
    const chunks: Buffer[] = [first]
    for (let next: unknown = read.call(this); Buffer.isBuffer(next); next = read.call(this)) chunks.push(next)
    return chunks.length === 1 ? first : Buffer.concat(chunks)
  } as T['read']
  return conn
}
