import type { Socket } from 'node:net'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { systemClock, type Clock } from '../core/clock.js'
import { InvalidArgumentError } from '../core/errors.js'
import { K, silentLogger, type Logger } from '../core/log.js'
import { Backoff } from './backoff.js'
import type { Outbox, OutboxMessage, OutboxStats } from './outbox.js'
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../protocol/index.js'

export type LinkState = 'disconnected' | 'connecting' | 'connected'

export type CloudMessageHandler = (topic: string, payload: Buffer) => void

export interface CloudTls {
  ca?: string | Buffer
  cert?: string | Buffer
  key?: string | Buffer
  /** SNI and certificate host name, when it differs from the URL's host. */
  servername?: string
}

export interface CloudLinkOptions {
  /** mqtt://host:port or mqtts://host:port of the cloud shim's broker. */
  url: string
  /** The coordinator's thing name: the MQTT client id, so the broker keeps one session for it. */
  thingName: string
  outbox: Outbox
  tls?: CloudTls
  username?: string
  password?: string | Buffer
  log?: Logger
  clock?: Clock
  /** Unacknowledged publishes at once (default 64). */
  window?: number
  /** Reconnect delays: full jitter between 0 and min(maxMs, initialMs * 2^n). */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number }
  /** A connection that stays up this long resets the backoff (default 60 s). */
  stableMs?: number
  /** Uniform in [0, 1); injectable for tests. */
  random?: () => number
  keepaliveSec?: number
  connectTimeoutMs?: number
  /** No PUBACK for the oldest in-flight message this long: the connection is presumed dead. */
  ackTimeoutMs?: number
  /** How long `close()` waits for PUBACKs of messages already sent before cutting the socket. */
  closeGraceMs?: number
  /**
   * PUBACKs are recorded in the outbox in one transaction per this many ms (default 100), not one
   * per PUBACK: an fsync per turn would cap the drain rate and wear an SD card. A crash within the
   * span sends those messages again (duplicates, never loss).
   */
  ackFlushMs?: number
}

export interface CloudLinkStats {
  state: LinkState
  /** When the current state was entered (clock ms). */
  since: number
  lastError: { message: string; at: number } | null
  /** CONNACKs received since start. */
  connects: number
  /** When the next connection attempt is due (clock ms), while waiting for it. */
  nextAttemptAt: number | null
  /** Failed attempts counted by the backoff since it was last reset. */
  backoffAttempt: number
  inFlight: number
  /** Window 1 until the first PUBACK after a connection died with messages in flight. */
  cautious: boolean
  /** Outbox messages confirmed by the cloud since start. */
  published: number
  /** Failed publish attempts charged to messages since start. */
  nacked: number
  /** QoS 0 messages handed to the socket by publishNow since start. */
  publishedNow: number
  subscriptions: string[]
  outbox: OutboxStats
}

/** One network connection; a reconnect builds a new one, so nothing of an old one leaks into it. */
interface Connection {
  client: MqttClient
  connected: boolean
  /** Outbox id -> performance.now() at publish, in send order. */
  inflight: Map<number, number>
  stableTimer: NodeJS.Timeout | undefined
  ackTimer: NodeJS.Timeout | undefined
  /** Settles promises that wait on this connection (SUBACKs) when it goes away. */
  onTeardown: Array<() => void>
}

const DEFAULTS = {
  window: 64,
  initialMs: 1000,
  maxMs: 5 * 60_000,
  stableMs: 60_000,
  keepaliveSec: 30,
  connectTimeoutMs: 10_000,
  ackTimeoutMs: 30_000,
  closeGraceMs: 2000,
  ackFlushMs: 100,
}

/** Pending PUBACKs that force a commit before ackFlushMs is up, bounding the memory they hold. */
const MAX_PENDING_ACKS = 8192

const URL_PROTOCOLS = new Set(['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ssl:', 'ws:', 'wss:'])

/**
 * The coordinator's MQTT connection to the cloud shim. It drains the outbox in order while
 * connected (QoS 1, bounded window, ack on PUBACK), reconnects with jittered exponential backoff,
 * and keeps cloud-to-coordinator subscriptions across reconnects. Nothing local waits on it.
 */
export class CloudLink {
  readonly #o: CloudLinkOptions
  readonly #log: Logger
  readonly #clock: Clock
  readonly #outbox: Outbox
  readonly #backoff: Backoff
  readonly #window: number
  readonly #subs = new Map<string, Set<CloudMessageHandler>>()
  /** Filters dropped while offline; the persistent session still has them until we unsubscribe. */
  readonly #staleFilters = new Set<string>()
  readonly #stateListeners = new Set<(state: LinkState) => void>()
  #conn: Connection | undefined
  #state: LinkState = 'disconnected'
  #since: number
  #lastError: { message: string; at: number } | null = null
  #reconnectTimer: NodeJS.Timeout | undefined
  #nextAttemptAt: number | null = null
  #cautious = false
  #pendingAcks: number[] = []
  #ackTimer: NodeJS.Timeout | undefined
  #pumpScheduled = false
  #stopWatchingOutbox: (() => void) | undefined
  #started = false
  #closed = false
  #n = { connects: 0, published: 0, nacked: 0, publishedNow: 0 }

  constructor(opts: CloudLinkOptions) {
    validateLinkOptions(opts)
    this.#o = opts
    this.#log = (opts.log ?? silentLogger()).child({ component: 'cloud-link' })
    this.#clock = opts.clock ?? systemClock
    this.#outbox = opts.outbox
    this.#window = opts.window ?? DEFAULTS.window
    this.#backoff = new Backoff({
      initialMs: opts.backoff?.initialMs ?? DEFAULTS.initialMs,
      maxMs: opts.backoff?.maxMs ?? DEFAULTS.maxMs,
      ...(opts.backoff?.factor === undefined ? {} : { factor: opts.backoff.factor }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
    })
    this.#since = this.#clock.now()
  }

  get state(): LinkState {
    return this.#state
  }

  /** Connects, and keeps reconnecting until `close()`. */
  start(): void {
    if (this.#started || this.#closed) return
    this.#started = true
    this.#stopWatchingOutbox = this.#outbox.onAvailable(() => this.#schedulePump())
    this.#connect()
  }

  /**
   * Stops sending, waits briefly for PUBACKs of what is already on the wire, and closes the socket.
   * Unacknowledged messages stay in the outbox for the next run.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#reconnectTimer)
    this.#nextAttemptAt = null
    this.#stopWatchingOutbox?.()
    const conn = this.#conn
    if (conn !== undefined) await this.#end(conn, conn.connected)
    this.#flushAcks()
    this.#setState('disconnected')
  }

  /** Calls `listener` on every state change; returns the unsubscribe function. */
  onState(listener: (state: LinkState) => void): () => void {
    this.#stateListeners.add(listener)
    return () => this.#stateListeners.delete(listener)
  }

  /**
   * Routes cloud messages matching `filter` to `handler`, subscribing at QoS 1 now if connected
   * and again after every reconnect. Resolves once the broker granted it (at once when offline);
   * rejects, and forgets the handler, if the broker refuses the filter.
   */
  async subscribe(filter: string, handler: CloudMessageHandler): Promise<() => Promise<void>> {
    if (!isValidTopicFilter(filter)) throw new InvalidArgumentError(`invalid topic filter '${filter}'`)
    const handlers = this.#subs.get(filter) ?? new Set()
    const isNew = handlers.size === 0
    handlers.add(handler)
    this.#subs.set(filter, handlers)
    this.#staleFilters.delete(filter)
    const conn = this.#conn
    if (isNew && conn?.connected === true) {
      try {
        await this.#sendSubscribe(conn, [filter])
      } catch (err) {
        this.#removeHandler(filter, handler)
        throw err
      }
    }
    return () => this.#unsubscribe(filter, handler)
  }

  /**
   * Latency over durability: one QoS 0 publish straight to the socket, not through the outbox.
   * Returns false (and sends nothing) when not connected.
   */
  publishNow(topic: string, payload: Uint8Array | string): boolean {
    if (!isValidTopicName(topic)) throw new InvalidArgumentError(`invalid topic name '${topic}'`)
    const conn = this.#conn
    if (conn?.connected !== true) return false
    conn.client.publish(topic, typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 0 })
    this.#n.publishedNow++
    return true
  }

  stats(): CloudLinkStats {
    return {
      state: this.#state,
      since: this.#since,
      lastError: this.#lastError,
      connects: this.#n.connects,
      nextAttemptAt: this.#nextAttemptAt,
      backoffAttempt: this.#backoff.attempt,
      inFlight: this.#conn?.inflight.size ?? 0,
      cautious: this.#cautious,
      published: this.#n.published,
      nacked: this.#n.nacked,
      publishedNow: this.#n.publishedNow,
      subscriptions: [...this.#subs.keys()],
      outbox: this.#outbox.stats(),
    }
  }

  // -------------------------------------------------------------------------------------------
  // Connection lifecycle

  #connect(): void {
    this.#nextAttemptAt = null
    this.#setState('connecting')
    let client: MqttClient
    try {
      client = mqtt.connect(this.#o.url, this.#clientOptions())
    } catch (err) {
      // Bad TLS material and the like throw here, before any socket exists to close.
      this.#recordError((err as Error).message)
      this.#setState('disconnected')
      this.#scheduleReconnect()
      return
    }
    const conn: Connection = { client, connected: false, inflight: new Map(), stableTimer: undefined, ackTimer: undefined, onTeardown: [] }
    this.#conn = conn
    client.on('connect', () => this.#onConnect(conn))
    client.on('message', (topic, payload) => this.#dispatch(topic, payload))
    client.on('error', (err) => this.#recordError(err.message))
    client.on('close', () => this.#onClose(conn))
  }

  #clientOptions(): IClientOptions {
    const o = this.#o
    return {
      clientId: o.thingName,
      clean: false,
      protocolVersion: 4,
      // Reconnects are ours (backoff with jitter, a fresh client each time), never MQTT.js's.
      reconnectPeriod: 0,
      keepalive: o.keepaliveSec ?? DEFAULTS.keepaliveSec,
      connectTimeout: o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(o.password === undefined ? {} : { password: typeof o.password === 'string' ? o.password : Buffer.from(o.password) }),
      ...(o.tls === undefined ? {} : { ...o.tls, rejectUnauthorized: true }),
    }
  }

  #onConnect(conn: Connection): void {
    if (conn !== this.#conn) return
    conn.connected = true
    this.#n.connects++
    // The window is bounded by PUBACK round trips: send each publish at once, not when Nagle says.
    ;(conn.client.stream as Partial<Pick<Socket, 'setNoDelay'>>).setNoDelay?.(true)
    conn.stableTimer = setTimeout(() => this.#backoff.reset(), this.#o.stableMs ?? DEFAULTS.stableMs)
    conn.stableTimer.unref()
    this.#setState('connected')
    this.#resubscribe(conn)
    this.#schedulePump()
  }

  /** The one place a connection ends, whatever ended it: broker, network, ack timeout or close(). */
  #onClose(conn: Connection): void {
    if (conn !== this.#conn) return
    this.#conn = undefined
    clearTimeout(conn.stableTimer)
    clearTimeout(conn.ackTimer)
    this.#flushAcks()
    this.#settleInflight(conn)
    for (const settle of conn.onTeardown.splice(0)) settle()
    conn.client.removeAllListeners()
    // MQTT.js may still report errors from a socket being torn down; they are not ours to handle.
    conn.client.on('error', () => {})
    conn.client.end(true)
    this.#setState('disconnected')
    if (!this.#closed) this.#scheduleReconnect()
  }

  /**
   * Messages that were on the wire when the connection died. The first time, none of them is
   * blamed (networks fail) and the next connection sends one message at a time; if it dies again
   * with that single message unacknowledged, the message is charged an attempt. A message that
   * makes the broker drop the connection thus reaches the dead-letter table, and a flaky network
   * does not charge whole windows of innocent messages.
   */
  #settleInflight(conn: Connection): void {
    const ids = [...conn.inflight.keys()]
    conn.inflight.clear()
    if (ids.length === 0) return
    if (this.#cautious && ids.length === 1 && !this.#closed) {
      this.#nack(ids[0] as number, 'connection lost while it was the only message in flight')
      return
    }
    this.#outbox.release(ids)
    if (!this.#closed) this.#cautious = true
  }

  #scheduleReconnect(): void {
    const delay = this.#backoff.next()
    this.#nextAttemptAt = this.#clock.now() + delay
    this.#log.info({ delayMs: delay, attempt: this.#backoff.attempt, [K.err]: this.#lastError?.message }, 'cloud link down; reconnecting later')
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      if (!this.#closed) this.#connect()
    }, delay)
  }

  /**
   * Graceful: DISCONNECT once the PUBACKs of what is on the wire are in; the socket is cut after
   * the grace period if they (or the broker's close) do not come. Resolves once the socket is closed.
   */
  #end(conn: Connection, graceful: boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => conn.client.stream.destroy(), graceful ? this.#o.closeGraceMs ?? DEFAULTS.closeGraceMs : 0)
      conn.client.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      conn.client.end(!graceful)
    })
  }

  #setState(state: LinkState): void {
    if (state === this.#state) return
    this.#state = state
    this.#since = this.#clock.now()
    this.#log.info({ state }, 'cloud link state')
    for (const listener of this.#stateListeners) {
      try {
        listener(state)
      } catch (err) {
        this.#log.error({ [K.err]: (err as Error).message }, 'cloud link state listener failed')
      }
    }
  }

  #recordError(message: string): void {
    this.#lastError = { message, at: this.#clock.now() }
    this.#log.debug({ [K.err]: message }, 'cloud link error')
  }

  // -------------------------------------------------------------------------------------------
  // Draining the outbox

  /** Refills run once per event-loop turn, so one PUBACK burst refills the window in one read. */
  #schedulePump(): void {
    if (this.#pumpScheduled) return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    const conn = this.#conn
    if (conn?.connected !== true || this.#closed) return
    const free = (this.#cautious ? 1 : this.#window) - conn.inflight.size
    if (free <= 0) return
    let batch: OutboxMessage[]
    try {
      batch = this.#outbox.take(free)
    } catch (err) {
      this.#recordError((err as Error).message)
      this.#log.error({ [K.err]: (err as Error).message }, 'cannot read the outbox; draining stops until the next change')
      return
    }
    for (const m of batch) this.#send(conn, m)
    this.#armAckTimer(conn)
  }

  #send(conn: Connection, m: OutboxMessage): void {
    conn.inflight.set(m.id, performance.now())
    conn.client.publish(m.topic, m.payload, { qos: m.qos }, (err) => this.#onPublished(conn, m.id, err))
  }

  /** MQTT.js reports success as `null` or `undefined`, depending on the path. */
  #onPublished(conn: Connection, id: number, err: Error | null | undefined): void {
    if (conn !== this.#conn || !conn.inflight.delete(id)) return
    if (err) {
      this.#recordError(err.message)
      this.#nack(id, err.message)
    } else {
      this.#recordAck(id)
      this.#n.published++
      this.#cautious = false
    }
    this.#schedulePump()
  }

  #nack(id: number, error: string): void {
    this.#n.nacked++
    try {
      if (this.#outbox.nack(id, error) === 'dead-lettered') {
        this.#log.warn({ id, [K.err]: error }, 'outbox message dead-lettered after repeated failures')
      }
    } catch (err) {
      this.#log.error({ id, [K.err]: (err as Error).message }, 'cannot record a failed attempt')
    }
  }

  /** The window slot is free at once; the outbox hears of it with the next batch. */
  #recordAck(id: number): void {
    this.#pendingAcks.push(id)
    if (this.#pendingAcks.length >= MAX_PENDING_ACKS) {
      this.#flushAcks()
      return
    }
    if (this.#ackTimer !== undefined) return
    this.#ackTimer = setTimeout(() => this.#flushAcks(), this.#o.ackFlushMs ?? DEFAULTS.ackFlushMs)
  }

  #flushAcks(): void {
    clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
    if (this.#pendingAcks.length === 0) return
    const ids = this.#pendingAcks
    this.#pendingAcks = []
    try {
      this.#outbox.ack(ids)
    } catch (err) {
      // The messages stay queued and go out again: a duplicate, never a loss.
      this.#log.error({ count: ids.length, [K.err]: (err as Error).message }, 'cannot record PUBACKs')
    }
  }

  /**
   * MQTT 3.1.1 has no negative PUBACK: a broker that silently drops a publish leaves it in flight
   * forever. If the oldest one waits longer than ackTimeoutMs the connection is presumed broken and
   * is cut, which the reconnect logic then handles.
   */
  #armAckTimer(conn: Connection): void {
    if (conn.ackTimer !== undefined) return
    const oldest = conn.inflight.values().next()
    if (oldest.done === true) return
    const timeout = this.#o.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs
    conn.ackTimer = setTimeout(() => {
      conn.ackTimer = undefined
      if (conn !== this.#conn) return
      const head = conn.inflight.values().next()
      if (head.done === true) return
      if (performance.now() - head.value >= timeout) {
        this.#recordError(`no PUBACK within ${timeout} ms`)
        conn.client.end(true)
        return
      }
      this.#armAckTimer(conn)
    }, Math.max(0, oldest.value + timeout - performance.now()))
    conn.ackTimer.unref()
  }

  // -------------------------------------------------------------------------------------------
  // Cloud -> coordinator

  #resubscribe(conn: Connection): void {
    const stale = [...this.#staleFilters]
    if (stale.length > 0) {
      conn.client.unsubscribe(stale, (err) => {
        if (err === undefined || err === null) for (const f of stale) this.#staleFilters.delete(f)
      })
    }
    const filters = [...this.#subs.keys()]
    if (filters.length === 0) return
    this.#sendSubscribe(conn, filters).catch((err: Error) => {
      this.#log.warn({ [K.err]: err.message }, 'cloud refused a subscription')
    })
  }

  /** Resolves on SUBACK (or when the connection goes first: the next one subscribes again). */
  #sendSubscribe(conn: Connection, filters: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      conn.onTeardown.push(resolve)
      conn.client.subscribe(filters, { qos: 1 }, (err, granted) => {
        if (err) return reject(err)
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic)
        if (refused.length === 0) return resolve()
        this.#recordError(`subscription refused: ${refused.join(', ')}`)
        reject(new Error(`the cloud refused the subscription to ${refused.join(', ')}`))
      })
    })
  }

  async #unsubscribe(filter: string, handler: CloudMessageHandler): Promise<void> {
    if (!this.#removeHandler(filter, handler)) return
    const conn = this.#conn
    if (conn?.connected !== true) {
      this.#staleFilters.add(filter)
      return
    }
    await conn.client.unsubscribeAsync(filter).catch(() => this.#staleFilters.add(filter))
  }

  /** Returns true when that was the filter's last handler. */
  #removeHandler(filter: string, handler: CloudMessageHandler): boolean {
    const handlers = this.#subs.get(filter)
    if (handlers === undefined || !handlers.delete(handler) || handlers.size > 0) return false
    this.#subs.delete(filter)
    return true
  }

  #dispatch(topic: string, payload: Buffer): void {
    for (const [filter, handlers] of this.#subs) {
      if (!topicMatches(filter, topic)) continue
      for (const handler of handlers) {
        try {
          handler(topic, payload)
        } catch (err) {
          this.#log.error({ [K.topic]: topic, [K.err]: (err as Error).message }, 'cloud message handler failed')
        }
      }
    }
  }
}

function validateLinkOptions(o: CloudLinkOptions): void {
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw new InvalidArgumentError(`cloud url '${o.url}' is not a URL`)
  }
  if (!URL_PROTOCOLS.has(url.protocol)) throw new InvalidArgumentError(`cloud url '${o.url}': unsupported scheme ${url.protocol}`)
  if (o.thingName.length === 0) throw new InvalidArgumentError('the cloud link needs the coordinator\'s thing name')
  const positive: Array<[string, number | undefined]> = [
    ['window', o.window], ['stableMs', o.stableMs], ['keepaliveSec', o.keepaliveSec],
    ['connectTimeoutMs', o.connectTimeoutMs], ['ackTimeoutMs', o.ackTimeoutMs],
  ]
  for (const [name, v] of positive) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 1)) throw new InvalidArgumentError(`cloud link option ${name} must be >= 1`)
  }
}
