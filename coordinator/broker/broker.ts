import type { IncomingMessage } from 'node:http'
import type { Duplex, Readable } from 'node:stream'
import { Aedes, type AedesOptions, type Client, type AedesPublishPacket, type ConnectPacket, type PublishPacket, type Subscription } from 'aedes'
import { K, type Logger } from '../core/log.js'
import { BROKER_LIMIT_DEFAULTS, type BrokerLimits } from '../config/index.js'
import { AuthRefusal, ThrottledRefusal, clientIdForEmpty, currentPrincipal, identify, stillValid, type Identity, type IdentityOptions } from './identity.js'
import type { ListenerBounds } from './listeners.js'
import { limitPacketSize, type PacketTooLargeError } from './packet-limit.js'
import type { Decision, PolicyEngine } from './policy.js'
import { TokenThrottle, type BackoffStarted } from './token-throttle.js'
import { storedWillOwner, WILL_OWNER_FIELD, willOwnerOf } from './wills.js'
import { batchWrites } from './write-batching.js'
import { readBuffered } from './read-buffered.js'

export interface BrokerOptions {
  /** aedes persistence (the SQLite one in production). */
  persistence: AedesOptions['persistence']
  identity: IdentityOptions
  policy: PolicyEngine
  log: Logger
  /** Messages delivered at once (aedes `concurrency`), sized to the board; 1000 when absent. */
  concurrency?: number
  /** Per-connection bounds (the queue cap is the persistence's); the config defaults when absent. */
  limits?: BrokerLimits
  /** aedes' heartbeat; wills left by a previous run are published after four of them. aedes' 60 s when absent. */
  heartbeatIntervalMs?: number
}

/** What the broker's bounds refused since it started; each refusal is also logged. */
export interface RefusalCounts {
  /** Connections closed for a packet over maxPacketBytes (or a WebSocket message over it). */
  packetTooLarge: number
  /** Connections closed for not sending CONNECT within connectTimeoutMs. */
  connectTimeout: number
  /** Token checks that failed, and those refused unchecked during a back-off. */
  tokenFailed: number
  tokenThrottled: number
  /** Subscriptions refused (SUBACK 0x80) beyond maxSubscriptionsPerClient. */
  subscriptionCap: number
}

/** What the broker keeps of a CONNECT until authentication, which aedes calls without the packet. */
interface ConnectRequest {
  emptyClientId: boolean
  will: ConnectPacket['will']
}

/** The part of an aedes persistence the will checks use (aedes' interface; ours is SqliteBrokerPersistence). */
interface WillPersistence {
  streamWill(brokers?: Record<string, number>): Readable
  getWill(client: { id: string }): Promise<{ brokerId?: string } | undefined>
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>
}

type StoredWill = PublishPacket & { clientId?: string; brokerId?: string }

export type MessageHandler = (topic: string, payload: Buffer) => void

/** In-process publish/subscribe on the broker, for services that live beside it. */
export interface LocalBus {
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1, retain?: boolean): Promise<void>
  subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>>
}

/** The longest a throttled CONNECT waits for its refusal. */
const THROTTLED_CONNACK_DELAY_MS = 1000
/** aedes' error for a connection whose CONNECT did not arrive within `connectTimeout`. */
const CONNECT_TIMEOUT_MESSAGE = 'connect did not arrive in time'
/** ws' error code for a message over `maxPayload` (the listener sets it to maxPacketBytes). */
const WS_MESSAGE_TOO_LARGE = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'

function remoteAddressOf(client: Client): string | undefined {
  return client.req?.socket.remoteAddress ?? (client.conn as { remoteAddress?: string }).remoteAddress
}

/**
 * Logs the broker persistence's dropped messages for a full session (maxQueuedPerClient): the first
 * and then each power of two, so a device offline for days costs a few lines, not one per message.
 */
export function reportQueueFull(log: Logger, maxQueued: number): (clientId: string, dropped: number) => void {
  return (clientId, dropped) => {
    if ((dropped & (dropped - 1)) !== 0) return
    log.warn({ [K.clientId]: clientId, dropped, maxQueued }, 'session queue full: newer QoS 1/2 messages for it are dropped')
  }
}

/** aedes with our identity and policy hooks; the listeners feed it connections (through `handle`). */
export class Broker implements LocalBus {
  readonly aedes: Aedes
  readonly #identities = new WeakMap<Client, Identity>()
  readonly #connects = new WeakMap<Client, ConnectRequest>()
  readonly #log: Logger
  readonly #policy: PolicyEngine
  readonly #identityOptions: IdentityOptions
  readonly #limits: BrokerLimits
  readonly #tokenThrottle: TokenThrottle
  /** Filters each connection holds, counted against maxSubscriptionsPerClient. */
  readonly #subscriptions = new WeakMap<Client, Set<string>>()
  readonly #refused: Omit<RefusalCounts, 'tokenFailed' | 'tokenThrottled'> = { packetTooLarge: 0, connectTimeout: 0, subscriptionCap: 0 }

  private constructor(aedes: Aedes, opts: BrokerOptions, limits: BrokerLimits) {
    this.aedes = aedes
    this.#log = opts.log
    this.#policy = opts.policy
    this.#limits = limits
    this.#tokenThrottle = new TokenThrottle(limits.tokenBackoff)
    this.#identityOptions = { ...opts.identity, tokenThrottle: this.#tokenThrottle, onBackoff: (id, address, started) => this.#logBackoff(id, address, started) }
  }

  static async create(opts: BrokerOptions): Promise<Broker> {
    const limits = opts.limits ?? BROKER_LIMIT_DEFAULTS
    const aedes = new Aedes({
      persistence: opts.persistence,
      concurrency: opts.concurrency ?? 1000,
      connectTimeout: limits.connectTimeoutMs,
      maxInflightInbound: limits.maxInflightPerClient,
      ...(opts.heartbeatIntervalMs === undefined ? {} : { heartbeatInterval: opts.heartbeatIntervalMs }),
    })
    const broker = new Broker(aedes, opts, limits)
    aedes.preConnect = (client, packet, done) => {
      broker.#connects.set(client, { emptyClientId: packet.clientId === '', will: packet.will })
      done(null, true)
    }
    aedes.authenticate = (client, _username, password, done) => broker.#authenticate(client, password, done)
    aedes.authorizePublish = (client, packet, done) => done(broker.#authorizePublish(client, packet))
    aedes.authorizeSubscribe = (client, sub, done) => done(null, broker.#withinSubscriptionCap(client, broker.#authorizeSubscribe(client, sub)))
    aedes.authorizeForward = (client, packet) => broker.#authorizeReceive(client, packet)
    aedes.on('unsubscribe', (topics, client) => broker.#forgetSubscriptions(client, topics))
    broker.#logEvents()
    // The hooks are in place before listen() sets the persistence up; its first will sweep comes
    // four heartbeats later, so the gate goes on the persistence it chose (memory when none is given).
    await aedes.listen()
    broker.#gateRestoredWills((aedes as unknown as { persistence: WillPersistence }).persistence)
    return broker
  }

  /**
   * Serves one connection (what the listeners call): aedes, with the packet size bounded in its
   * parser, its buffered input read whole, and the connection's writes batched per event-loop turn. A parser that cannot be bounded is refused rather than served unbounded.
   */
  readonly handle = (conn: Duplex, req?: IncomingMessage): void => {
    const client = this.aedes.handle(batchWrites(readBuffered(conn)), req)
    if (limitPacketSize(client, this.#limits.maxPacketBytes, (err) => this.#packetTooLarge(client, err))) return
    this.#log.error('cannot bound the MQTT parser (unexpected aedes/mqtt-packet version): connection refused')
    conn.destroy()
  }

  /** The bounds the listeners apply before a connection reaches `handle`. */
  listenerBounds(): ListenerBounds {
    return {
      connectTimeoutMs: this.#limits.connectTimeoutMs,
      maxPacketBytes: this.#limits.maxPacketBytes,
      onTimeout: (listener, address) => {
        this.#refused.connectTimeout++
        this.#log.info({ [K.listener]: listener, address, timeoutMs: this.#limits.connectTimeoutMs, count: this.#refused.connectTimeout },
          'handshake not finished in time: connection closed')
      },
    }
  }

  refusals(): RefusalCounts {
    return { ...this.#refused, tokenFailed: this.#tokenThrottle.failed, tokenThrottled: this.#tokenThrottle.throttled }
  }

  publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0, retain = false): Promise<void> {
    const packet = { cmd: 'publish' as const, topic, payload: Buffer.from(payload), qos, retain, dup: false }
    return new Promise((resolve, reject) => this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())))
  }

  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    const deliver = (packet: AedesPublishPacket, cb: () => void): void => {
      try {
        handler(packet.topic, Buffer.from(packet.payload))
      } finally {
        cb()
      }
    }
    await new Promise<void>((resolve) => this.aedes.subscribe(filter, deliver, resolve))
    return () => new Promise<void>((resolve) => this.aedes.unsubscribe(filter, deliver, resolve))
  }

  /**
   * Disconnects clients whose device was removed or re-issued since they connected; called when the
   * registry changes (the CLI edits it from another process).
   */
  revalidateClients(): void {
    const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients
    for (const client of Object.values(clients)) {
      const identity = this.#identities.get(client)
      if (identity === undefined || stillValid(identity, this.#identityOptions.findDevice(client.id))) continue
      this.#log.warn({ [K.clientId]: client.id }, 'device removed or re-issued: disconnecting it')
      // Forgotten before it closes: the will aedes publishes on close is then refused like any
      // publish of a client nobody vouches for, since its owner is no longer allowed anything.
      this.#identities.delete(client)
      if ((client as { will?: unknown }).will != null) this.#log.warn({ [K.clientId]: client.id }, 'will dropped: its owner was removed or re-issued')
      client.close()
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.aedes.close(() => resolve()))
  }

  #authenticate(client: Client, password: Buffer | undefined, done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void): void {
    this.#identifyAndAdmit(client, password).then((identity) => {
      for (const name of this.#policy.unknownPolicies(identity.principal)) {
        this.#log.warn({ [K.clientId]: client.id, policy: name }, 'device refers to a policy that is not configured')
      }
      this.#identities.set(client, identity)
      this.#log.debug({ [K.clientId]: client.id, method: identity.method }, 'client authenticated')
      done(null, true)
    }, (err: unknown) => {
      if (!(err instanceof AuthRefusal)) {
        this.#log.error({ [K.clientId]: client.id, [K.err]: String(err) }, 'authentication failed unexpectedly')
        done(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false)
        return
      }
      const refuse = (): void => done(Object.assign(new Error(err.message), { returnCode: err.returnCode }), false)
      if (!(err instanceof ThrottledRefusal)) {
        this.#log.warn({ [K.clientId]: client.id, reason: err.message }, 'connection refused')
        refuse()
        return
      }
      // A flood of throttled attempts is summarised by #logBackoff, not logged one by one, and each
      // is answered late: a client that reconnects at once then costs a connection per second, not
      // hundreds. aedes ignores the answer if the client has gone meanwhile.
      this.#log.debug({ [K.clientId]: client.id, reason: err.message }, 'connection refused')
      setTimeout(refuse, Math.min(err.waitMs, THROTTLED_CONNACK_DELAY_MS)).unref()
    })
  }

  #logBackoff(clientId: string, address: string, started: readonly BackoffStarted[]): void {
    const longest = Math.max(...started.map((s) => s.waitMs))
    const failures = Math.max(...started.map((s) => s.failures))
    const { tokenFailed, tokenThrottled } = this.refusals()
    this.#log.warn({ [K.clientId]: clientId, address, failures, waitMs: longest, keys: started.map((s) => s.key), tokenFailed, tokenThrottled },
      'failed token checks: further attempts wait')
  }

  #packetTooLarge(client: Client, err: PacketTooLargeError): void {
    this.#refused.packetTooLarge++
    this.#log.warn({ [K.clientId]: client.id, bytes: err.announcedBytes, maxBytes: err.maxBytes, cmd: err.cmd, count: this.#refused.packetTooLarge },
      'packet too large: connection closed')
  }

  /** Re-subscribing to a filter the connection holds does not count; a new one beyond the cap gets 0x80. */
  #withinSubscriptionCap(client: Client, sub: Subscription | null): Subscription | null {
    if (sub === null) return null
    let held = this.#subscriptions.get(client)
    if (held === undefined) this.#subscriptions.set(client, (held = new Set()))
    if (held.has(sub.topic) || held.size < this.#limits.maxSubscriptionsPerClient) {
      held.add(sub.topic)
      return sub
    }
    this.#refused.subscriptionCap++
    this.#log.warn({ [K.clientId]: client.id, [K.topic]: sub.topic, max: this.#limits.maxSubscriptionsPerClient, count: this.#refused.subscriptionCap },
      'subscribe refused: too many subscriptions on this connection')
    return null
  }

  #forgetSubscriptions(client: Client, topics: string[]): void {
    const held = this.#subscriptions.get(client)
    for (const topic of topics) held?.delete(topic)
  }

  /** Who the client is, and whether that identity may take its client id and leave its will. */
  async #identifyAndAdmit(client: Client, password: Buffer | undefined): Promise<Identity> {
    this.#assignClientId(client, password)
    const identity = await identify(client, password, this.#identityOptions)
    this.#admit(client, identity)
    return identity
  }

  /** An empty client id is the server's to fill in (or refuse) before the identity is decided. */
  #assignClientId(client: Client, password: Buffer | undefined): void {
    if (this.#connects.get(client)?.emptyClientId !== true) return
    client.id = clientIdForEmpty(client, client.clean, password)
  }

  /**
   * Checks that need the identity: an anonymous client must not take the client id of a device
   * that has credentials (it would resume or wipe that device's persistent session, queued
   * messages included) nor displace a connected client that proved its identity, and the will
   * must be one its owner may publish. The admitted will is stamped with its owner, which the
   * persistence stores with it.
   */
  #admit(client: Client, identity: Identity): void {
    if (identity.method === 'anonymous-loopback') {
      const device = this.#identityOptions.findDevice(client.id)
      if (device !== undefined && (device.certFingerprint !== null || device.tokenHash !== null)) {
        throw new AuthRefusal(5, `client id '${client.id}' is a device with credentials: connect with its certificate or token`)
      }
      const held = this.#connectedClient(client.id)
      const heldBy = held === undefined || held === client ? undefined : this.#identities.get(held)
      if (heldBy !== undefined && heldBy.method !== 'anonymous-loopback') {
        throw new AuthRefusal(5, `client id '${client.id}' is in use by a client that authenticated with a ${heldBy.method}`)
      }
    }
    const will = this.#connects.get(client)?.will
    if (will === undefined || will === null) return
    const decision = this.#policy.authorizePublish(identity.principal, will.topic)
    if (!decision.allowed) throw new AuthRefusal(5, `will refused: ${decision.reason}`)
    Object.assign(will, { [WILL_OWNER_FIELD]: willOwnerOf(identity) })
  }

  #connectedClient(id: string): Client | undefined {
    return (this.aedes as unknown as { clients: Record<string, Client | undefined> }).clients[id]
  }

  /**
   * `client` is null only for a will left by a previous run (after a crash): aedes publishes those
   * itself, and they are authorized as their stored owner. The coordinator's own publishes do not
   * come through here.
   */
  #authorizePublish(client: Client | null, packet: PublishPacket): Error | null {
    const topic = packet.topic
    if (client === null) {
      const decision = this.#restoredWillDecision(packet)
      return decision.allowed ? null : new Error(decision.reason)
    }
    const identity = this.#identities.get(client)
    if (identity === undefined) return new Error('client not authenticated')
    const decision = this.#policy.authorizePublish(identity.principal, topic)
    if (decision.allowed) return null
    this.#log.warn({ [K.clientId]: client.id, [K.topic]: topic, reason: decision.reason }, 'publish refused')
    return new Error(decision.reason)
  }

  /** Allowed only if the owner was allowed when it connected and still is, with what it is now. */
  #restoredWillDecision(will: PublishPacket): Decision {
    const owner = storedWillOwner(will)
    if (owner === undefined) return { allowed: false, reason: 'the will has no recorded owner' }
    const was = this.#policy.authorizePublish(owner.principal, will.topic)
    if (!was.allowed) return was
    const now = currentPrincipal(owner, this.#identityOptions)
    if (now === undefined) return { allowed: false, reason: `its owner '${owner.principal.thingName}' is no longer registered with the credential it used` }
    return this.#policy.authorizePublish(now, will.topic)
  }

  /**
   * aedes would turn a refused will into a broker error and keep it for the next sweep, so refused
   * wills are filtered out of the stream it sweeps, logged and deleted.
   */
  #gateRestoredWills(persistence: WillPersistence): void {
    const stream = persistence.streamWill.bind(persistence)
    persistence.streamWill = (brokers) => stream(brokers).filter(async (will: StoredWill) => {
      const decision = this.#restoredWillDecision(will)
      if (decision.allowed) return true
      this.#log.warn({ [K.clientId]: will.clientId, [K.topic]: will.topic, reason: decision.reason }, 'will dropped')
      const id = will.clientId ?? ''
      // Unless the client came back and left a new will meanwhile.
      if ((await persistence.getWill({ id }))?.brokerId === will.brokerId) await persistence.delWill({ id, brokerId: will.brokerId })
      return false
    })
  }

  /**
   * AWS IoT's Receive: a message reaches a subscriber only if its policy lets it receive that topic,
   * whatever subscription matched (a wildcard granted beside a deny, or one restored from a session).
   */
  #authorizeReceive(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const identity = this.#identities.get(client)
    return identity !== undefined && this.#policy.authorizeReceive(identity.principal, packet.topic) ? packet : null
  }

  /** Returning null makes aedes answer the SUBACK with 0x80 (failure) for that filter. */
  #authorizeSubscribe(client: Client, sub: Subscription): Subscription | null {
    const identity = this.#identities.get(client)
    if (identity === undefined) return null
    const decision = this.#policy.authorizeSubscribe(identity.principal, sub.topic)
    if (decision.allowed) return sub
    this.#log.warn({ [K.clientId]: client.id, [K.topic]: sub.topic, reason: decision.reason }, 'subscribe refused')
    return null
  }

  #logEvents(): void {
    this.aedes.on('clientReady', (client) => this.#log.debug({ [K.clientId]: client.id }, 'client connected'))
    this.aedes.on('clientDisconnect', (client) => this.#log.debug({ [K.clientId]: client.id }, 'client disconnected'))
    this.aedes.on('clientError', (client, err) => this.#log.debug({ [K.clientId]: client.id, [K.err]: err.message }, 'client error'))
    this.aedes.on('connectionError', (client, err) => this.#connectionError(client, err))
    // aedes emits errors of its own work (the will sweep); unheard, they would end the process.
    const emitter: NodeJS.EventEmitter = this.aedes
    emitter.on('error', (err: Error) => this.#log.error({ [K.err]: err.message }, 'broker error'))
  }

  /** Errors before CONNECT; the bounds' own ones are counted and logged above debug. */
  #connectionError(client: Client, err: Error & { code?: string }): void {
    if (err.message === CONNECT_TIMEOUT_MESSAGE) {
      this.#refused.connectTimeout++
      this.#log.info({ address: remoteAddressOf(client), timeoutMs: this.#limits.connectTimeoutMs, count: this.#refused.connectTimeout },
        'no CONNECT in time: connection closed')
    } else if (err.code === WS_MESSAGE_TOO_LARGE) {
      this.#refused.packetTooLarge++
      this.#log.warn({ address: remoteAddressOf(client), maxBytes: this.#limits.maxPacketBytes, count: this.#refused.packetTooLarge },
        'WebSocket message too large: connection closed')
    } else {
      this.#log.debug({ [K.clientId]: client.id, [K.err]: err.message }, 'connection error')
    }
  }
}
