/**
 * A LocalBus over an MQTT.js client: how the cloud shim's services (shadows, registration) run on
 * an existing broker (mosquitto, EMQX, ...) instead of the embedded one. The services cannot tell
 * the difference: publish goes to the broker, and each message the broker delivers is handed to
 * every handler whose filter matches it.
 *
 * Authentication and authorization of coordinators are then the broker's job (see the README for
 * a mosquitto ACL that mirrors the embedded broker's policy).
 */
import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { LocalBus, MessageHandler } from '../../coordinator/broker/index.js'
import { K, type Logger } from '../../coordinator/core/log.js'
import { topicMatches } from '../../coordinator/protocol/index.js'

export interface MqttBusOptions {
  url: string
  clientId: string
  /** PEM file paths for TLS brokers. */
  caFile?: string | null
  certFile?: string | null
  keyFile?: string | null
  log: Logger
  /** How long start-up waits for the broker, in ms (default 10 000). */
  connectTimeoutMs?: number
}

const SUBACK_FAILURE = 128

export class MqttBus implements LocalBus {
  readonly #client: MqttClient
  readonly #handlers = new Map<string, Set<MessageHandler>>()
  readonly #log: Logger

  private constructor(client: MqttClient, log: Logger) {
    this.#client = client
    this.#log = log
    client.on('message', (topic, payload) => this.#dispatch(topic, payload))
    client.on('offline', () => log.warn('lost the broker; reconnecting'))
    client.on('error', (err) => log.warn({ [K.err]: err.message }, 'broker connection error'))
  }

  /** Resolves once the broker accepted the connection; rejects on refusal or after the timeout. */
  static async connect(opts: MqttBusOptions): Promise<MqttBus> {
    const client = mqtt.connect(opts.url, clientOptions(opts))
    try {
      await firstConnack(client, opts.url, opts.connectTimeoutMs ?? 10_000)
    } catch (err) {
      client.end(true)
      throw err
    }
    return new MqttBus(client, opts.log)
  }

  async publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0, retain = false): Promise<void> {
    await this.#client.publishAsync(topic, Buffer.from(payload), { qos, retain })
  }

  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    let handlers = this.#handlers.get(filter)
    if (handlers === undefined) {
      this.#handlers.set(filter, (handlers = new Set()))
      let granted = false
      try {
        const [grant] = await this.#client.subscribeAsync(filter, { qos: 1 })
        granted = grant !== undefined && grant.qos !== SUBACK_FAILURE
      } finally {
        if (!granted) this.#handlers.delete(filter)
      }
      if (!granted) throw new Error(`the broker refused the subscription to ${JSON.stringify(filter)}`)
    }
    handlers.add(handler)
    return async () => {
      handlers.delete(handler)
      if (handlers.size > 0 || this.#handlers.get(filter) !== handlers) return
      this.#handlers.delete(filter)
      await this.#client.unsubscribeAsync(filter)
    }
  }

  close(): Promise<void> {
    return this.#client.endAsync()
  }

  #dispatch(topic: string, payload: Buffer): void {
    for (const [filter, handlers] of this.#handlers) {
      if (!topicMatches(filter, topic)) continue
      for (const handler of handlers) {
        try {
          handler(topic, payload)
        } catch (err) {
          this.#log.error({ [K.topic]: topic, [K.err]: (err as Error).message }, 'bus message handler failed')
        }
      }
    }
  }
}

/**
 * A persistent session (clean: false) under a fixed client id: QoS 1 requests that arrive while
 * the shim restarts wait in the broker instead of being lost.
 */
function clientOptions(opts: MqttBusOptions): IClientOptions {
  const read = (file: string | null | undefined): Buffer | undefined => (file == null ? undefined : readFileSync(file))
  const tls = { ca: read(opts.caFile), cert: read(opts.certFile), key: read(opts.keyFile) }
  return {
    clientId: opts.clientId,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    ...Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)),
  }
}

function firstConnack(client: MqttClient, url: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`cannot reach the MQTT broker at ${withoutCredentials(url)} within ${timeoutMs} ms`)), timeoutMs)
    const onConnect = (): void => done()
    // A refused CONNACK (bad credentials, client id) will not get better by retrying.
    const onError = (err: Error & { code?: unknown }): void => {
      if (typeof err.code === 'number') done(new Error(`the MQTT broker at ${withoutCredentials(url)} refused the connection: ${err.message}`))
    }
    function done(err?: Error): void {
      clearTimeout(timer)
      client.off('connect', onConnect)
      client.off('error', onError)
      if (err === undefined) resolve()
      else reject(err)
    }
    client.once('connect', onConnect)
    client.on('error', onError)
  })
}

/** Credentials in a broker URL stay out of logs, error messages and endpoints.json. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return '(invalid URL)'
  }
}
