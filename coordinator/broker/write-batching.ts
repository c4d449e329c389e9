import type { Duplex } from 'node:stream'

/**
 * Coalesces what the broker writes to one connection during one turn of the event loop into one
 * write: one syscall and, on TCP, one segment. The listeners turn Nagle's algorithm off so that a
 * shadow reply leaves at once; without this, every QoS 0 delivery to a busy subscriber would then
 * be a segment of its own (aedes writes each from its own setImmediate, and mqtt-packet uncorks
 * after each packet). A write waits at most until the next turn of the loop.
 */
export function batchWrites<T extends Duplex>(conn: T): T {
  const write = conn.write
  let corked = false
  const flush = (): void => {
    corked = false
    conn.uncork()
  }
  conn.write = function batchedWrite(this: T, ...args: Parameters<T['write']>): boolean {
    if (!corked && !conn.destroyed) {
      corked = true
      conn.cork()
      setImmediate(flush)
    }
    return write.apply(this, args)
  } as T['write']
  return conn
}
