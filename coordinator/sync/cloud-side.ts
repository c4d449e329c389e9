import { K, type Logger } from '../core/log.js'
import { shadowTopic, shadowTopicPrefix, type ShadowRef, type ShadowState } from '../protocol/index.js'
import type { EnqueueResult, LinkState, OutboxInput } from '../cloud/index.js'
import { isJsonObject, stateOf, statePatch, statesEqual } from './merge.js'
import { SyncError } from './errors.js'
import type { SyncTokens } from './tokens.js'

/** The parts of the CloudLink the sync uses. */
export interface SyncLink {
  readonly state: LinkState
  onState(listener: (state: LinkState) => void): () => void
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>>
}

export interface SyncOutbox {
  enqueue(msg: OutboxInput): EnqueueResult
}

/** A document as one side holds it: its state sections and version. */
export interface SideDocument {
  state: ShadowState
  version: number
}

/** What the cloud tells the sync about a watched shadow, besides replies to its own gets. */
export interface CloudEvents {
  /** Someone else changed or deleted the cloud shadow. */
  changed(ref: ShadowRef): void
  /** One of our writes landed and the cloud shadow now has this version. */
  landed(ref: ShadowRef, version: number): void
}

export interface CloudSideOptions {
  link: SyncLink
  outbox: SyncOutbox
  tokens: SyncTokens
  requestTimeoutMs: number
  log: Logger
}

interface Pending {
  resolve(doc: SideDocument | null): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

/**
 * Sync messages go before telemetry in the outbox: a shadow write waiting behind a telemetry
 * backlog would keep both sides apart for as long as the backlog takes to drain.
 */
export const SYNC_PRIORITY = 10

/**
 * The cloud copies of the synced shadows, over the cloud link. Every request (get, update,
 * delete) goes through the outbox, so the cloud serves them in the order they were made: a get
 * answers with a document that already holds every write queued before it.
 */
export class CloudSide {
  readonly #o: CloudSideOptions
  readonly #pending = new Map<string, Pending>()
  readonly #unsubscribe: Array<() => Promise<void>> = []

  constructor(opts: CloudSideOptions) {
    this.#o = opts
  }

  /**
   * Subscribes to the shadow's get replies and, unless `events` is null (the cloud's changes are
   * ignored), to its change notifications. Rejects when the cloud refuses the subscription.
   */
  async watch(ref: ShadowRef, events: CloudEvents | null): Promise<void> {
    const prefix = shadowTopicPrefix(ref)
    const filters: Array<[string, (payload: Buffer) => void]> = [
      [`${prefix}/get/accepted`, (p) => this.#onGetReply(p, true)],
      [`${prefix}/get/rejected`, (p) => this.#onGetReply(p, false)],
      [`${prefix}/update/rejected`, (p) => this.#onUpdateRejected(ref, p)],
    ]
    if (events !== null) {
      filters.push([`${prefix}/update/documents`, (p) => this.#onDocuments(ref, p, events)])
      filters.push([`${prefix}/delete/accepted`, (p) => this.#onDeleted(ref, p, events)])
    }
    for (const [filter, handler] of filters) {
      this.#unsubscribe.push(await this.#o.link.subscribe(filter, (_topic, payload) => handler(payload)))
    }
  }

  /** The cloud document, or null when the cloud has none; rejects on timeout or link loss. */
  get(ref: ShadowRef): Promise<SideDocument | null> {
    const clientToken = this.#o.tokens.next()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#settle(clientToken)?.reject(new SyncError(`no answer from the cloud within ${this.#o.requestTimeoutMs} ms`)), this.#o.requestTimeoutMs)
      this.#pending.set(clientToken, { resolve, reject, timer })
      try {
        // The TTL drops a get that never left the outbox: nobody would be waiting for its answer.
        this.#send(shadowTopic(ref, 'get'), { clientToken }, this.#o.requestTimeoutMs)
      } catch (err) {
        this.#settle(clientToken)?.reject(err as Error)
      }
    })
  }

  /** Queues the writes that make the cloud document (`current`) hold `target` (null: deleted). */
  write(ref: ShadowRef, current: SideDocument | null, target: ShadowState | null): void {
    if (statesEqual(current?.state ?? null, target)) return
    if (target === null) {
      this.#send(shadowTopic(ref, 'delete'), { clientToken: this.#o.tokens.next() })
      return
    }
    // State only: a version would be the coordinator's numbering, which the cloud does not share.
    this.#send(shadowTopic(ref, 'update'), { state: statePatch(current?.state ?? null, target), clientToken: this.#o.tokens.next() })
  }

  /** Fails every get in flight: the link is down and their answers would go nowhere. */
  failPending(reason: string): void {
    for (const token of [...this.#pending.keys()]) this.#settle(token)?.reject(new SyncError(reason))
  }

  async close(): Promise<void> {
    this.failPending('the sync is closing')
    for (const unsubscribe of this.#unsubscribe.splice(0)) await unsubscribe()
  }

  #send(topic: string, body: object, ttlMs?: number): void {
    const msg: OutboxInput = { topic, payload: Buffer.from(JSON.stringify(body)), qos: 1, priority: SYNC_PRIORITY, ...(ttlMs === undefined ? {} : { ttlMs }) }
    const r = this.#o.outbox.enqueue(msg)
    if (!r.accepted) throw new SyncError(`the outbox refused a sync message (${r.reason})`)
  }

  #settle(token: string): Pending | undefined {
    const p = this.#pending.get(token)
    if (p === undefined) return undefined
    this.#pending.delete(token)
    clearTimeout(p.timer)
    return p
  }

  #onGetReply(payload: Buffer, accepted: boolean): void {
    const body = parseBody(payload)
    const pending = typeof body?.['clientToken'] === 'string' ? this.#settle(body['clientToken']) : undefined
    if (pending === undefined || body === null) return
    if (accepted) pending.resolve({ state: stateOf(body), version: Number(body['version']) })
    else if (body['code'] === 404) pending.resolve(null)
    else pending.reject(new SyncError(`the cloud refused a get: ${String(body['code'])} ${String(body['message'])}`))
  }

  #onDocuments(ref: ShadowRef, payload: Buffer, events: CloudEvents): void {
    const body = parseBody(payload)
    if (body === null) return
    const current = body['current']
    if (!this.#o.tokens.isOurs(body['clientToken'])) events.changed(ref)
    else if (isJsonObject(current) && typeof current['version'] === 'number') events.landed(ref, current['version'])
  }

  #onDeleted(ref: ShadowRef, payload: Buffer, events: CloudEvents): void {
    const body = parseBody(payload)
    if (body !== null && !this.#o.tokens.isOurs(body['clientToken'])) events.changed(ref)
  }

  /** The next sync sees the cloud without our write and adopts its values: loud, not silent. */
  #onUpdateRejected(ref: ShadowRef, payload: Buffer): void {
    const body = parseBody(payload)
    if (body === null || !this.#o.tokens.isOurs(body['clientToken'])) return
    this.#o.log.warn({ [K.thingName]: ref.thingName, [K.shadowName]: ref.shadowName, code: body['code'], reason: body['message'] }, 'the cloud refused a sync write')
  }
}

function parseBody(payload: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'))
    return isJsonObject(v) ? v : null
  } catch {
    return null
  }
}
