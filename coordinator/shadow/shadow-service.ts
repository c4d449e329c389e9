import { epochSeconds, type Clock } from '../core/clock.js'
import { ClosedError } from '../core/errors.js'
import { K, type Logger } from '../core/log.js'
import {
  applyOwnedUpdate, deleteAcceptedBody, errorBody, getAcceptedBody, notFoundError, parseGetOrDeleteRequest,
  parseShadowRequestTopicLoose, parseUpdateRequest, shadowTopic, isValidThingName, isValidShadowName, isClassicShadow, ShadowErrors,
  type JsonObject, type ShadowDocument, type ShadowError, type ShadowLimits, type ShadowOperation, type ShadowRef,
} from '../protocol/index.js'
import type { ShadowStore } from '../store/index.js'
import type { LocalBus } from '../broker/index.js'
import { RateLimiter } from './rate-limit.js'
import { Refusals, type RefusalReason } from './refusals.js'

export interface ShadowServiceOptions {
  store: ShadowStore
  bus: LocalBus
  limits: ShadowLimits
  /**
   * Bytes of a request payload; a larger one is answered 413 before it is decoded or parsed, and
   * dropped at once. Absent or null: REQUEST_BYTES_PER_STATE_BYTE x limits.maxStateBytes.
   */
  maxRequestBytes?: number | null
  /** Live named shadows a thing may have; creating one more is refused (400). Absent: 100. */
  maxNamedShadowsPerThing?: number
  maxRequestsPerSecondPerThing: number
  clock: Clock
  log: Logger
}

/**
 * A valid update is its state plus deletions of keys already stored, the clientToken and JSON
 * whitespace: about twice the state at most, so four times leaves room for pretty-printed JSON.
 */
export const REQUEST_BYTES_PER_STATE_BYTE = 4
/** AWS has no cap; 100 is one ListNamedShadowsForThing page, and bounds a thing's storage. */
export const DEFAULT_MAX_NAMED_SHADOWS_PER_THING = 100

/** The outcome of one shadow request, as the reply body and whether it was accepted. */
export interface ShadowResult {
  accepted: boolean
  /** HTTP-style status: 200 when accepted, else the error code. */
  status: number
  body: JsonObject
}

/**
 * A committed change, for triggers and sync; listeners run after the replies are published.
 * `clientToken` is the request's, so a listener can tell its own writes from others' (sync).
 */
export type ShadowChange =
  | { kind: 'update'; ref: ShadowRef; document: ShadowDocument; delta: JsonObject | null; clientToken?: string }
  | { kind: 'delete'; ref: ShadowRef; version: number; clientToken?: string }

export type ShadowChangeListener = (change: ShadowChange) => void

/** Where a request came from decides which replies go out over MQTT (AWS: REST gets are not echoed). */
type Origin = 'mqtt' | 'api'

interface Job {
  ref: ShadowRef
  op: ShadowOperation
  /** Null: over maxRequestBytes, answered 413 without ever being read. */
  payload: Uint8Array | null
  origin: Origin
  resolve(r: ShadowResult): void
}

/** A reply to publish, serialized when it is made. */
interface Reply {
  topic: string
  payload: string
}

const replyOf = (topic: string, body: JsonObject): Reply => ({ topic, payload: JSON.stringify(body) })

interface Outcome {
  result: ShadowResult
  replies: Reply[]
  change?: ShadowChange
}

const INTERNAL: ShadowError = { code: 500, message: 'Internal service failure' }
const TOO_MANY: ShadowError = { code: 429, message: 'Too Many Requests' }

/**
 * The local shadow service (AWS IoT Device Shadow protocol). Requests arriving in the same event
 * loop turn are committed in one SQLite transaction (one fsync), and only then are their replies
 * published: an `accepted` reply always describes a durable change.
 */
export class ShadowService {
  readonly #o: ShadowServiceOptions
  readonly #limiter: RateLimiter
  readonly #refusals: Refusals
  readonly #maxRequestBytes: number
  readonly #maxNamed: number
  #pending: Job[] = []
  #scheduled = false
  #unsubscribe: Array<() => Promise<void>> = []
  readonly #listeners = new Set<ShadowChangeListener>()
  #closed = false

  constructor(opts: ShadowServiceOptions) {
    this.#o = opts
    this.#limiter = new RateLimiter(opts.maxRequestsPerSecondPerThing, opts.clock)
    this.#refusals = new Refusals(opts.clock, opts.log)
    this.#maxRequestBytes = opts.maxRequestBytes ?? REQUEST_BYTES_PER_STATE_BYTE * opts.limits.maxStateBytes
    this.#maxNamed = opts.maxNamedShadowsPerThing ?? DEFAULT_MAX_NAMED_SHADOWS_PER_THING
  }

  /** The largest request payload served; transports can stop reading a body past it (HTTP). */
  get maxRequestBytes(): number {
    return this.#maxRequestBytes
  }

  /** Counts a request whose body a transport refused for passing maxRequestBytes before reading it. */
  refusedOversizedBody(): void {
    this.#refusals.count('requestBytes')
  }

  /** Requests refused by a bound so far, by reason. */
  refusals(): Record<RefusalReason, number> {
    return this.#refusals.snapshot()
  }

  async start(): Promise<void> {
    const onMessage = (topic: string, payload: Buffer): void => this.#onMqttRequest(topic, payload)
    this.#unsubscribe.push(await this.#o.bus.subscribe('$aws/things/+/shadow/+', onMessage))
    this.#unsubscribe.push(await this.#o.bus.subscribe('$aws/things/+/shadow/name/+/+', onMessage))
  }

  /** Stops taking requests and finishes those already queued. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const unsubscribe of this.#unsubscribe.splice(0)) await unsubscribe()
    this.#flush()
  }

  /** Subscribes to committed changes; returns the unsubscribe function. */
  onChange(listener: ShadowChangeListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  update(ref: ShadowRef, payload: Uint8Array): Promise<ShadowResult> {
    return this.#submit(ref, 'update', payload, 'api')
  }

  get(ref: ShadowRef, payload: Uint8Array = new Uint8Array()): Promise<ShadowResult> {
    return this.#submit(ref, 'get', payload, 'api')
  }

  delete(ref: ShadowRef, payload: Uint8Array = new Uint8Array()): Promise<ShadowResult> {
    return this.#submit(ref, 'delete', payload, 'api')
  }

  /** Named shadows of a thing, paged like ListNamedShadowsForThing. */
  listNamed(thingName: string, pageSize: number, nextToken?: string): { results: string[]; nextToken?: string; timestamp: number } {
    const after = nextToken === undefined ? '' : Buffer.from(nextToken, 'base64url').toString('utf8')
    const page = this.#o.store.listNamed(thingName, after, pageSize + 1)
    const results = page.slice(0, pageSize)
    const last = results.at(-1)
    const more = page.length > pageSize && last !== undefined
    return { results, ...(more ? { nextToken: Buffer.from(last).toString('base64url') } : {}), timestamp: epochSeconds(this.#o.clock) }
  }

  #onMqttRequest(topic: string, payload: Buffer): void {
    const parsed = parseShadowRequestTopicLoose(topic)
    if (parsed === null) return
    const ref: ShadowRef = parsed.shadowName === undefined ? { thingName: parsed.thingName } : { thingName: parsed.thingName, shadowName: parsed.shadowName }
    void this.#submit(ref, parsed.operation, payload, 'mqtt')
  }

  #submit(ref: ShadowRef, op: ShadowOperation, payload: Uint8Array, origin: Origin): Promise<ShadowResult> {
    if (this.#closed && origin === 'api') return Promise.reject(new ClosedError('the shadow service is closed'))
    return new Promise((resolve) => {
      // Sized before anything reads it; an oversized payload is not kept until the batch runs.
      this.#pending.push({ ref, op, payload: payload.byteLength > this.#maxRequestBytes ? null : payload, origin, resolve })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#scheduled = false
    const jobs = this.#pending
    this.#pending = []
    if (jobs.length === 0) return
    let outcomes: Outcome[]
    try {
      outcomes = this.#o.store.transaction(() => jobs.map((job) => this.#process(job)))
    } catch (err) {
      this.#o.log.error({ [K.err]: (err as Error).message, count: jobs.length }, 'shadow batch failed; nothing in it was applied')
      outcomes = jobs.map((job) => this.#rejected(job, INTERNAL, clientTokenOf(job)))
    }
    jobs.forEach((job, i) => {
      const outcome = outcomes[i]
      if (outcome === undefined) return
      for (const reply of outcome.replies) this.#publish(reply)
      job.resolve(outcome.result)
      if (outcome.change !== undefined) this.#notify(outcome.change)
    })
  }

  #process(job: Job): Outcome {
    const { ref } = job
    if (!isValidThingName(ref.thingName) || (ref.shadowName !== undefined && !isValidShadowName(ref.shadowName))) {
      return this.#rejected(job, { code: 400, message: 'Invalid thing or shadow name' }, undefined)
    }
    if (!this.#limiter.tryTake(ref.thingName)) return this.#refused(job, 'rate', TOO_MANY, clientTokenOf(job))
    if (job.payload === null) return this.#refused(job, 'requestBytes', ShadowErrors.payloadTooLarge(), undefined)
    switch (job.op) {
      case 'update': return this.#update(job, job.payload)
      case 'get': return this.#get(job, job.payload)
      case 'delete': return this.#delete(job, job.payload)
    }
  }

  #update(job: Job, payload: Uint8Array): Outcome {
    const req = parseUpdateRequest(payload, this.#o.limits)
    if (!req.ok) return this.#refusedIfTooLarge(job, req.error, req.clientToken)
    const { doc, deletedVersion, body: previousBody } = this.#load(job.ref)
    if (doc === null && !isClassicShadow(job.ref) && this.#o.store.countNamed(job.ref.thingName) >= this.#maxNamed) {
      return this.#refused(job, 'namedShadows', ShadowErrors.tooManyNamedShadows(this.#maxNamed), req.value.clientToken)
    }
    const now = epochSeconds(this.#o.clock)
    const previousVersion = doc?.version ?? 0
    // The loaded document and the parsed request are ours alone: merged in place, not copied.
    const out = applyOwnedUpdate(doc, deletedVersion, req.value, now, this.#o.limits)
    if (!out.ok) return this.#refusedIfTooLarge(job, out.error, req.value.clientToken)
    const { version } = out.document
    // The same text as JSON.stringify({ state, metadata }), from the JSON the size checks made.
    const body = `{"state":${out.json.state},"metadata":${out.json.metadata}}`
    this.#o.store.put(job.ref.thingName, job.ref.shadowName ?? '', body, version, this.#o.clock.now())
    const replies: Reply[] = [replyOf(shadowTopic(job.ref, 'update', 'accepted'), out.accepted)]
    if (out.delta !== null) replies.push(replyOf(shadowTopic(job.ref, 'update', 'delta'), out.delta))
    const previous = previousBody === null ? 'null' : snapshotJson(previousBody, previousVersion)
    replies.push({ topic: shadowTopic(job.ref, 'update', 'documents'), payload: documentsJson(previous, snapshotJson(body, version), now, req.value.clientToken) })
    const change: ShadowChange = {
      kind: 'update', ref: job.ref, document: out.document, delta: out.delta === null ? null : (out.delta['state'] as JsonObject), ...tokenOf(req.value.clientToken),
    }
    return { result: { accepted: true, status: 200, body: out.accepted }, replies, change }
  }

  #get(job: Job, payload: Uint8Array): Outcome {
    const req = parseGetOrDeleteRequest(payload, this.#o.limits)
    if (!req.ok) return this.#rejected(job, req.error, req.clientToken)
    const { doc } = this.#load(job.ref)
    if (doc === null) return this.#rejected(job, notFoundError(job.ref), req.value.clientToken)
    const body = getAcceptedBody(doc, epochSeconds(this.#o.clock), req.value.clientToken)
    const replies = job.origin === 'mqtt' ? [replyOf(shadowTopic(job.ref, 'get', 'accepted'), body)] : []
    return { result: { accepted: true, status: 200, body }, replies }
  }

  #delete(job: Job, payload: Uint8Array): Outcome {
    const req = parseGetOrDeleteRequest(payload, this.#o.limits)
    if (!req.ok) return this.#rejected(job, req.error, req.clientToken)
    const { doc } = this.#load(job.ref)
    if (doc === null) return this.#rejected(job, notFoundError(job.ref), req.value.clientToken)
    // The tombstone keeps the version, so a re-created shadow continues above it.
    this.#o.store.put(job.ref.thingName, job.ref.shadowName ?? '', null, doc.version, this.#o.clock.now())
    if (!isClassicShadow(job.ref)) this.#o.store.pruneNamedTombstones(job.ref.thingName, this.#maxNamed)
    const body = deleteAcceptedBody(doc.version, epochSeconds(this.#o.clock), req.value.clientToken)
    const replies = [replyOf(shadowTopic(job.ref, 'delete', 'accepted'), body)]
    return { result: { accepted: true, status: 200, body }, replies, change: { kind: 'delete', ref: job.ref, version: doc.version, ...tokenOf(req.value.clientToken) } }
  }

  #refused(job: Job, reason: RefusalReason, error: ShadowError, clientToken: string | undefined): Outcome {
    this.#refusals.count(reason, job.ref.thingName)
    return this.#rejected(job, error, clientToken)
  }

  #refusedIfTooLarge(job: Job, error: ShadowError, clientToken: string | undefined): Outcome {
    return error.code === 413 ? this.#refused(job, 'size', error, clientToken) : this.#rejected(job, error, clientToken)
  }

  /** A rejection is published over MQTT only for MQTT requests (AWS: REST callers get HTTP errors). */
  #rejected(job: Job, error: ShadowError, clientToken: string | undefined): Outcome {
    const body = errorBody(error, epochSeconds(this.#o.clock), clientToken)
    const replies = job.origin === 'mqtt' ? [replyOf(shadowTopic(job.ref, job.op, 'rejected'), body)] : []
    return { result: { accepted: false, status: error.code, body }, replies }
  }

  /** The live document (freshly parsed: the caller may change it), its stored JSON, or the tombstone's version. */
  #load(ref: ShadowRef): { doc: ShadowDocument | null; body: string | null; deletedVersion: number | null } {
    const row = this.#o.store.get(ref.thingName, ref.shadowName ?? '')
    if (row === undefined) return { doc: null, body: null, deletedVersion: null }
    if (row.body === null) return { doc: null, body: null, deletedVersion: row.version }
    const { state, metadata } = JSON.parse(row.body) as Pick<ShadowDocument, 'state' | 'metadata'>
    return { doc: { state, metadata, version: row.version }, body: row.body, deletedVersion: null }
  }

  #notify(change: ShadowChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change)
      } catch (err) {
        this.#o.log.error({ [K.err]: (err as Error).message }, 'shadow change listener failed')
      }
    }
  }

  #publish(reply: Reply): void {
    this.#o.bus.publish(reply.topic, reply.payload, 1).catch((err: Error) => {
      this.#o.log.error({ [K.topic]: reply.topic, [K.err]: err.message }, 'failed to publish shadow reply')
    })
  }
}

/**
 * A `previous`/`current` entry of update/documents from a stored body (the JSON of { state,
 * metadata }, the store's format): the same JSON as documentSnapshot builds, without copying and
 * serializing the document again.
 */
function snapshotJson(storedBody: string, version: number): string {
  return `${storedBody.slice(0, -1)},"version":${version}}`
}

function documentsJson(previous: string, current: string, nowSec: number, clientToken: string | undefined): string {
  const token = clientToken === undefined ? '' : `,"clientToken":${JSON.stringify(clientToken)}`
  return `{"previous":${previous},"current":${current},"timestamp":${nowSec}${token}}`
}

const tokenOf = (clientToken: string | undefined): { clientToken?: string } => (clientToken === undefined ? {} : { clientToken })

/** Best effort, for replies to requests that failed before parsing finished. */
function clientTokenOf(job: Job): string | undefined {
  if (job.payload === null) return undefined
  try {
    const v = JSON.parse(Buffer.from(job.payload).toString('utf8')) as { clientToken?: unknown }
    return typeof v.clientToken === 'string' ? v.clientToken : undefined
  } catch {
    return undefined
  }
}
