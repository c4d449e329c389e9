import { K, type Logger } from '../core/log.js'
import type { SyncLink, SyncOutbox } from './cloud-side.js'
import { SYNC_PRIORITY } from './cloud-side.js'
import { SyncError } from './errors.js'
import { isJsonObject } from './merge.js'
import type { SyncTokens } from './tokens.js'

export interface RegistrationOptions {
  link: SyncLink
  outbox: SyncOutbox
  tokens: SyncTokens
  /** The coordinator's thing name. */
  name: string
  /** Things whose shadows are synced, other than the coordinator itself. */
  devices: readonly string[]
  timeoutMs: number
  log: Logger
}

interface Waiter {
  resolve(answer: Record<string, unknown>): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

/**
 * Confirms the synced devices with the cloud registry (`cloud/{name}/register` with `devices`,
 * cloud-shim/registry/self-registration.ts): the cloud shim lets a coordinator reach only the
 * shadows of devices the operator registered under it, and answers which of the configured ones
 * it refuses. Done on every connect, so a change of the config or the registry is seen again.
 */
export class DeviceRegistration {
  readonly #o: RegistrationOptions
  readonly #waiting = new Map<string, Waiter>()
  #unsubscribe: (() => Promise<void>) | undefined

  constructor(opts: RegistrationOptions) {
    this.#o = opts
  }

  async start(): Promise<void> {
    this.#unsubscribe = await this.#o.link.subscribe(`cloud/${this.#o.name}/register/+`, (_topic, payload) => this.#onAnswer(payload))
  }

  /** Resolves with the devices the cloud refused (logged), or rejects without an answer in time. */
  register(): Promise<string[]> {
    const clientToken = this.#o.tokens.next()
    const body = { devices: this.#o.devices.map((name) => ({ name })), clientToken }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(clientToken)?.reject(new SyncError(`no answer to the device registration within ${this.#o.timeoutMs} ms`)), this.#o.timeoutMs)
      this.#waiting.set(clientToken, { resolve: (answer) => resolve(this.#refused(answer)), reject, timer })
      const r = this.#o.outbox.enqueue({
        topic: `cloud/${this.#o.name}/register`, payload: Buffer.from(JSON.stringify(body)), qos: 1, priority: SYNC_PRIORITY, ttlMs: this.#o.timeoutMs,
      })
      if (!r.accepted) this.#settle(clientToken)?.reject(new SyncError(`the outbox refused the device registration (${r.reason})`))
    })
  }

  async close(): Promise<void> {
    for (const token of [...this.#waiting.keys()]) this.#settle(token)?.reject(new SyncError('the sync is closing'))
    await this.#unsubscribe?.()
  }

  #settle(token: string): Waiter | undefined {
    const w = this.#waiting.get(token)
    if (w === undefined) return undefined
    this.#waiting.delete(token)
    clearTimeout(w.timer)
    return w
  }

  #onAnswer(payload: Buffer): void {
    let body: unknown
    try {
      body = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isJsonObject(body) || typeof body['clientToken'] !== 'string') return
    this.#settle(body['clientToken'])?.resolve(body)
  }

  /** A rejected registration (it has a `code`) refuses every device. */
  #refused(answer: Record<string, unknown>): string[] {
    if (answer['code'] !== undefined) {
      this.#o.log.warn({ code: answer['code'], reason: answer['message'] }, 'the cloud refused the device registration; their shadows are not synced')
      return [...this.#o.devices]
    }
    const refused = Array.isArray(answer['refused']) ? answer['refused'].filter(isJsonObject) : []
    for (const r of refused) this.#o.log.warn({ [K.thingName]: r['name'], reason: r['reason'] }, 'the cloud refused a synced device; its shadows are not synced')
    return refused.map((r) => String(r['name']))
  }
}
