import { Aedes, type AedesOptions, type Client, type AedesPublishPacket, type Subscription } from 'aedes'
import { K, type Logger } from '../core/log.js'
import { AuthRefusal, identify, stillValid, type Identity, type IdentityOptions } from './identity.js'
import type { PolicyEngine } from './policy.js'

export interface BrokerOptions {
  /** aedes persistence (the SQLite one in production). */
  persistence: AedesOptions['persistence']
  identity: IdentityOptions
  policy: PolicyEngine
  log: Logger
  /** Messages delivered at once (aedes `concurrency`), sized to the board; 1000 when absent. */
  concurrency?: number
}

export type MessageHandler = (topic: string, payload: Buffer) => void

/** In-process publish/subscribe on the broker, for services that live beside it. */
export interface LocalBus {
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1, retain?: boolean): Promise<void>
  subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>>
}

/** aedes with our identity and policy hooks; the listeners feed it connections. */
export class Broker implements LocalBus {
  readonly aedes: Aedes
  readonly #identities = new WeakMap<Client, Identity>()
  readonly #log: Logger
  readonly #policy: PolicyEngine
  readonly #identityOptions: IdentityOptions

  private constructor(aedes: Aedes, opts: BrokerOptions) {
    this.aedes = aedes
    this.#log = opts.log
    this.#policy = opts.policy
    this.#identityOptions = opts.identity
  }

  static async create(opts: BrokerOptions): Promise<Broker> {
    const aedes = await Aedes.createBroker({ persistence: opts.persistence, concurrency: opts.concurrency ?? 1000 })
    const broker = new Broker(aedes, opts)
    aedes.authenticate = (client, _username, password, done) => broker.#authenticate(client, password, done)
    aedes.authorizePublish = (client, packet, done) => done(broker.#authorizePublish(client, packet.topic))
    aedes.authorizeSubscribe = (client, sub, done) => done(null, broker.#authorizeSubscribe(client, sub))
    broker.#logEvents()
    return broker
  }

  identityOf(client: Client): Identity | undefined {
    return this.#identities.get(client)
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
      client.close()
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.aedes.close(() => resolve()))
  }

  #authenticate(client: Client, password: Buffer | undefined, done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void): void {
    try {
      const identity = identify(client, password, this.#identityOptions)
      for (const name of this.#policy.unknownPolicies(identity.principal)) {
        this.#log.warn({ [K.clientId]: client.id, policy: name }, 'device refers to a policy that is not configured')
      }
      this.#identities.set(client, identity)
      this.#log.debug({ [K.clientId]: client.id, method: identity.method }, 'client authenticated')
      done(null, true)
    } catch (err) {
      if (!(err instanceof AuthRefusal)) throw err
      this.#log.warn({ [K.clientId]: client.id, reason: err.message }, 'connection refused')
      done(Object.assign(new Error(err.message), { returnCode: err.returnCode }), false)
    }
  }

  /** `client` is null for messages the coordinator itself publishes. */
  #authorizePublish(client: Client | null, topic: string): Error | null {
    if (client === null) return null
    const identity = this.#identities.get(client)
    if (identity === undefined) return new Error('client not authenticated')
    const decision = this.#policy.authorizePublish(identity.principal, topic)
    if (decision.allowed) return null
    this.#log.warn({ [K.clientId]: client.id, [K.topic]: topic, reason: decision.reason }, 'publish refused')
    return new Error(decision.reason)
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
    this.aedes.on('connectionError', (client, err) => this.#log.debug({ [K.clientId]: client.id, [K.err]: err.message }, 'connection error'))
  }
}
