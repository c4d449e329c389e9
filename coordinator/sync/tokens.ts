import { randomBytes } from 'node:crypto'

/**
 * Client tokens of the requests the sync makes, on both sides: `sync:<nonce>:<n>`. The change a
 * sync write causes comes back (local onChange, the cloud's `update/documents`) carrying the token,
 * and is recognised as our own and not synced again. The nonce is per process, so a device cannot
 * forge it and slip a change past the sync; a write queued by an earlier run that lands after a
 * restart is simply treated as foreign, which costs one extra sync and nothing else.
 */
export class SyncTokens {
  readonly #prefix = `sync:${randomBytes(4).toString('hex')}:`
  #n = 0

  next(): string {
    this.#n += 1
    return `${this.#prefix}${this.#n}`
  }

  isOurs(token: unknown): boolean {
    return typeof token === 'string' && token.startsWith(this.#prefix)
  }
}
