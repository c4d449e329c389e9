/**
 * Shadow requests waiting for their reply, keyed by clientToken. Replies are matched on the token
 * and the operation, never on arrival order: the service does not promise an order (reference
 * §1.6), and accepted/rejected topics are shared with every other client of the same shadow.
 */
import type { JsonObject, ShadowOperation } from '../../coordinator/protocol/index.js'
import { ShadowTimeoutError } from './errors.js'

interface Pending {
  operation: ShadowOperation
  resolve(body: JsonObject): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

export class PendingRequests {
  readonly #entries = new Map<string, Pending>()

  has(clientToken: string): boolean {
    return this.#entries.has(clientToken)
  }

  /** Registers a request; the promise rejects with ShadowTimeoutError after `timeoutMs`. */
  add(clientToken: string, operation: ShadowOperation, timeoutMs: number): Promise<JsonObject> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(clientToken, new ShadowTimeoutError(operation, clientToken, timeoutMs)), timeoutMs)
      this.#entries.set(clientToken, { operation, resolve, reject, timer })
    })
  }

  /** Settles the request with this token and operation; false when there is none (a late reply). */
  settle(clientToken: string, operation: ShadowOperation, outcome: { ok: true; body: JsonObject } | { ok: false; error: Error }): boolean {
    if (this.#entries.get(clientToken)?.operation !== operation) return false
    const entry = this.#take(clientToken) as Pending
    if (outcome.ok) entry.resolve(outcome.body)
    else entry.reject(outcome.error)
    return true
  }

  fail(clientToken: string, err: Error): void {
    this.#take(clientToken)?.reject(err)
  }

  failAll(err: Error): void {
    for (const token of [...this.#entries.keys()]) this.fail(token, err)
  }

  #take(clientToken: string): Pending | undefined {
    const entry = this.#entries.get(clientToken)
    if (entry === undefined) return undefined
    this.#entries.delete(clientToken)
    clearTimeout(entry.timer)
    return entry
  }
}
