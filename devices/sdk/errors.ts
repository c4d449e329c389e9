/**
 * Errors the device SDK rejects with. A shadow rejection keeps AWS's numeric `code` and `message`
 * (reference §1.7) so code written against AWS IoT (`err.code === 404`) works unchanged.
 */
import type { ShadowOperation } from '../../coordinator/protocol/index.js'

/**
 * A `rejected` reply to update, get or delete: `code` is the HTTP-style status AWS sends (400, 404,
 * 409, 413, 429, ...) and the message is AWS's text.
 */
export class ShadowRejectedError extends Error {
  readonly code: number
  readonly operation: ShadowOperation
  readonly shadowName: string | undefined

  constructor(operation: ShadowOperation, shadowName: string | undefined, reply: { code: number; message: string }) {
    super(reply.message)
    this.name = 'ShadowRejectedError'
    this.code = reply.code
    this.operation = operation
    this.shadowName = shadowName
  }
}

/** No accepted/rejected reply carrying the request's clientToken arrived in time. */
export class ShadowTimeoutError extends Error {
  constructor(readonly operation: ShadowOperation, readonly clientToken: string, readonly timeoutMs: number) {
    super(`no reply to shadow ${operation} (clientToken ${clientToken}) within ${timeoutMs} ms`)
    this.name = 'ShadowTimeoutError'
  }
}

/** The broker refused a subscription (SUBACK 0x80), usually because a policy does not allow it. */
export class SubscriptionRefusedError extends Error {
  constructor(readonly filters: readonly string[]) {
    super(`subscription refused by the broker: ${filters.join(', ')}`)
    this.name = 'SubscriptionRefusedError'
  }
}

/** Work that was pending when the DeviceClient was closed. */
export class DeviceClosedError extends Error {
  constructor() {
    super('the device client is closed')
    this.name = 'DeviceClosedError'
  }
}

/** The coordinator's discovery route answered with an error or with a body of the wrong shape. */
export class DiscoveryError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
    this.name = 'DiscoveryError'
  }
}

export function isShadowNotFound(err: unknown): boolean {
  return err instanceof ShadowRejectedError && err.code === 404
}
