/**
 * A device's connection to the coordinator: one MQTT 3.1.1 client whose client id is the thing
 * name, with reconnect backoff, resubscription when the broker lost the session, shadows and
 * buffered telemetry.
 *
 * Connection lifecycle, as seen from MQTT.js events:
 *   connecting --CONNACK--> online --close--> offline --backoff timer--> connecting ...
 * The first connection must succeed (connectDevice rejects otherwise); after that the client
 * reconnects until close(). "online" is our own flag, set in the CONNACK handler after MQTT.js has
 * re-sent its in-flight messages, so buffered telemetry always goes out after them, in order.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt'
import { parseShadowTopic } from '../../coordinator/protocol/index.js'
import { backoffDelay } from './backoff.js'
import { DeviceClosedError, SubscriptionRefusedError } from './errors.js'
import { resolveDeviceOptions, type DeviceOptions, type DeviceSettings } from './options.js'
import { ShadowClient, type ShadowStats, type ShadowTransport } from './shadow-client.js'
import { encodeTelemetry, telemetryTopic, type TelemetryOptions } from './telemetry.js'
import { TelemetryOutbox, type OutgoingMessage, type PublishOutcome, type TelemetryStats } from './telemetry-outbox.js'

export interface DeviceEvents {
  /** Every CONNACK; `resubscribed` when the broker had lost the session and subscriptions were renewed. */
  connect: [info: { sessionPresent: boolean; resubscribed: boolean }]
  disconnect: []
  /** Transport, TLS and CONNACK errors; the client keeps reconnecting. */
  connectionError: [err: Error]
  /** A delta or change listener threw; with no listener for this event the error is rethrown. */
  listenerError: [err: unknown]
}

export interface DeviceStats {
  connected: boolean
  /** Successful connections, the first one included. */
  connects: number
  telemetry: TelemetryStats
  /** Summed over every shadow of this device. */
  shadow: ShadowStats
}

const MAX_FILTERS_PER_SUBSCRIBE = 8

export function connectDevice(options: DeviceOptions): Promise<DeviceClient> {
  return DeviceClient.connect(options)
}

export class DeviceClient extends EventEmitter<DeviceEvents> {
  readonly thingName: string
  readonly #settings: DeviceSettings
  readonly #mqtt: MqttClient
  readonly #subscriptions = new Set<string>()
  readonly #shadows = new Map<string, ShadowClient>()
  /** Deltas for shadows nobody asked for yet: a persistent session delivers them right after CONNACK. */
  readonly #orphanDeltas = new Map<string, Buffer>()
  readonly #telemetry: TelemetryOutbox
  readonly #tokenPrefix = randomBytes(6).toString('hex')
  #tokenCount = 0
  #online = false
  #connects = 0
  #attempt = 0
  #closed = false
  #onlineWaiters: Array<{ resolve(): void; reject(err: Error): void }> = []

  /** Connects and resolves on the first CONNACK; rejects (and gives up) if that first attempt fails. */
  static async connect(options: DeviceOptions): Promise<DeviceClient> {
    const settings = resolveDeviceOptions(options)
    const device = new DeviceClient(settings, mqtt.connect(settings.url, settings.mqtt))
    await device.#firstConnection()
    return device
  }

  private constructor(settings: DeviceSettings, client: MqttClient) {
    super()
    this.thingName = settings.thingName
    this.#settings = settings
    this.#mqtt = client
    this.#telemetry = new TelemetryOutbox(settings.offlineBuffer, (msg, done) => this.#transmit(msg, done), () => this.#online)
    // Prepended so resubscription and the telemetry flush precede packets MQTT.js queued offline.
    client.prependListener('connect', (connack) => this.#onConnect(connack))
    client.on('close', () => this.#onClose())
    client.on('reconnect', () => this.#onReconnectAttempt())
    client.on('error', (err) => this.emit('connectionError', err))
    client.on('message', (topic, payload) => this.#route(topic, payload))
  }

  get connected(): boolean {
    return this.#online
  }

  /** The classic shadow without a name, a named shadow otherwise; one ShadowClient per name. */
  shadow(name?: string): ShadowClient {
    const key = name ?? ''
    const existing = this.#shadows.get(key)
    if (existing !== undefined) return existing
    if (this.#closed) throw new DeviceClosedError()
    const client = new ShadowClient(this.#shadowTransport(), name)
    this.#shadows.set(key, client)
    this.#adoptOrphanDelta(key, client)
    return client
  }

  /**
   * Publishes a reading. Resolves 'sent' once the broker has it, or 'dropped' if the offline
   * buffer had to evict it or the client closed first.
   */
  publishTelemetry(data: unknown, options: TelemetryOptions = {}): Promise<PublishOutcome> {
    const payload = encodeTelemetry(data, options.encoding ?? 'json')
    const topic = options.topic ?? telemetryTopic(this.thingName)
    return this.#telemetry.publish({ topic, payload, qos: options.qos ?? 0 })
  }

  stats(): DeviceStats {
    const shadow: ShadowStats = { updates: 0, rejected: 0, timedOut: 0, deltas: 0, staleDiscarded: 0 }
    for (const client of this.#shadows.values()) {
      for (const [k, v] of Object.entries(client.stats())) shadow[k as keyof ShadowStats] += v
    }
    return { connected: this.#online, connects: this.#connects, telemetry: this.#telemetry.stats(), shadow }
  }

  /**
   * Disconnects (a clean DISCONNECT when online, so a persistent session is kept) and settles all
   * pending work: shadow requests reject with DeviceClosedError, unsent telemetry is 'dropped'.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const err = new DeviceClosedError()
    for (const shadow of this.#shadows.values()) shadow.failPending(err)
    for (const waiter of this.#onlineWaiters.splice(0)) waiter.reject(err)
    this.#telemetry.close()
    // MQTT.js's graceful end waits for every in-flight QoS 1 ack and never finishes if the link
    // dies meanwhile, so a DISCONNECT is sent only when nothing is awaiting an ack.
    const graceful = this.#online && Object.keys(this.#mqtt.outgoing).length === 0
    await this.#mqtt.endAsync(!graceful)
    this.#online = false
  }

  #firstConnection(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (err?: Error): void => {
        this.#mqtt.off('connect', onConnect).off('error', settle).off('close', onClose)
        if (err === undefined) return resolve()
        this.#closed = true
        this.#mqtt.end(true)
        reject(err)
      }
      const onConnect = (): void => settle()
      const onClose = (): void => settle(new Error(`connection to ${this.#settings.url} closed before CONNACK`))
      this.#mqtt.on('connect', onConnect).on('error', settle).on('close', onClose)
    })
  }

  #onConnect(connack: IConnackPacket): void {
    const reconnected = this.#connects > 0
    this.#connects++
    this.#attempt = 0
    this.#armBackoff()
    const sessionPresent = connack.sessionPresent
    // A new session has no subscriptions; the very first connect has none to renew yet.
    const resubscribed = reconnected && !sessionPresent && this.#subscriptions.size > 0
    if (resubscribed) this.#resubscribe()
    this.#online = true
    this.#telemetry.flush()
    for (const waiter of this.#onlineWaiters.splice(0)) waiter.resolve()
    this.emit('connect', { sessionPresent, resubscribed })
  }

  #onClose(): void {
    if (!this.#online) return
    this.#online = false
    this.emit('disconnect')
  }

  #onReconnectAttempt(): void {
    this.#attempt++
    this.#armBackoff()
  }

  /**
   * MQTT.js reads reconnectPeriod each time it arms its reconnect timer (on close), so setting it
   * after a CONNACK and at each attempt spaces the attempt that follows the next failure.
   */
  #armBackoff(): void {
    if (this.#settings.backoff === null) return
    this.#mqtt.options.reconnectPeriod = backoffDelay(this.#attempt + 1, this.#settings.backoff, Math.random())
  }

  /** At most 8 filters per SUBSCRIBE, IoT Core's limit (reference §1.8), so the SDK stays portable. */
  #resubscribe(): void {
    const all = [...this.#subscriptions]
    for (let i = 0; i < all.length; i += MAX_FILTERS_PER_SUBSCRIBE) {
      const filters = all.slice(i, i + MAX_FILTERS_PER_SUBSCRIBE)
      this.#mqtt.subscribeAsync(filters, { qos: 1 })
        .then((granted) => checkGranted(filters, granted))
        .catch((err: Error) => this.emit('connectionError', err))
    }
  }

  #route(topic: string, payload: Buffer): void {
    const parsed = parseShadowTopic(topic)
    if (parsed?.kind !== 'reply' || parsed.ref.thingName !== this.thingName) return
    const key = parsed.ref.shadowName ?? ''
    const shadow = this.#shadows.get(key)
    if (shadow !== undefined) shadow.handleReply(parsed.operation, parsed.status, payload)
    else if (parsed.status === 'delta') this.#orphanDeltas.set(key, payload)
  }

  #adoptOrphanDelta(key: string, client: ShadowClient): void {
    const payload = this.#orphanDeltas.get(key)
    if (payload === undefined) return
    this.#orphanDeltas.delete(key)
    client.handleReply('update', 'delta', payload)
  }

  #transmit(msg: OutgoingMessage, done: (err?: Error) => void): void {
    // MQTT.js passes null, not undefined, on success.
    this.#mqtt.publish(msg.topic, msg.payload, { qos: msg.qos }, (err) => done(err ?? undefined))
  }

  #shadowTransport(): ShadowTransport {
    return {
      thingName: this.thingName,
      requestTimeoutMs: this.#settings.requestTimeoutMs,
      subscribe: (filters) => this.#subscribe(filters),
      publish: (topic, payload) => this.#publishWhenOnline(topic, payload),
      newClientToken: () => `${this.#tokenPrefix}-${++this.#tokenCount}`,
      isOwnClientToken: (token) => token.startsWith(`${this.#tokenPrefix}-`),
      reportListenerError: (err) => this.#reportListenerError(err),
    }
  }

  async #subscribe(filters: string[]): Promise<void> {
    for (const f of filters) this.#subscriptions.add(f)
    await this.#whenOnline()
    checkGranted(filters, await this.#mqtt.subscribeAsync(filters, { qos: 1 }))
  }

  /**
   * Shadow requests wait for the connection instead of entering MQTT.js's offline store: after a
   * lost session they must follow the resubscription, or their replies would go nowhere.
   */
  async #publishWhenOnline(topic: string, payload: string): Promise<void> {
    await this.#whenOnline()
    await this.#mqtt.publishAsync(topic, payload, { qos: 1 })
  }

  #whenOnline(): Promise<void> {
    if (this.#closed) return Promise.reject(new DeviceClosedError())
    if (this.#online) return Promise.resolve()
    return new Promise((resolve, reject) => this.#onlineWaiters.push({ resolve, reject }))
  }

  #reportListenerError(err: unknown): void {
    if (this.listenerCount('listenerError') > 0) this.emit('listenerError', err)
    else queueMicrotask(() => { throw err })
  }
}

function checkGranted(filters: string[], granted: ReadonlyArray<{ qos: number }>): void {
  // SUBACK return code 0x80 is a refusal.
  const refused = filters.filter((_, i) => (granted[i]?.qos ?? 0x80) === 0x80)
  if (refused.length > 0) throw new SubscriptionRefusedError(refused)
}
