/** Shared by the device SDK integration tests: an operator over HTTP, an observer over MQTT, waiting. */
import { createServer } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import { topicMatches } from '../../coordinator/protocol/topic-filter.js'

/** An anonymous loopback client may read every device's telemetry with this config. */
export const OBSERVER_CONFIG = {
  auth: { anonymousPolicies: ['observer'] },
  policies: [{ name: 'observer', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['things/+/telemetry'] }] }],
  shadow: { maxRequestsPerSecondPerThing: 0 },
}

export interface HttpReply {
  status: number
  json: Record<string, unknown>
}

/** The operator's side: the coordinator's AWS-style shadow REST API. */
export async function operator(httpUrl: string, method: 'GET' | 'POST' | 'DELETE', thing: string, body?: unknown, shadowName?: string): Promise<HttpReply> {
  const query = shadowName === undefined ? '' : `?name=${encodeURIComponent(shadowName)}`
  const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
  const res = await fetch(`${httpUrl}/things/${thing}/shadow${query}`, init)
  return { status: res.status, json: (await res.json()) as Record<string, unknown> }
}

export const setDesired = (httpUrl: string, thing: string, desired: Record<string, unknown>): Promise<HttpReply> =>
  operator(httpUrl, 'POST', thing, { state: { desired } })

/** Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** A TCP port that was free a moment ago: bind 0, read the port, release it. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface RawObserver {
  client: MqttClient
  messages: Array<{ topic: string; payload: Buffer }>
}

/**
 * Subscribes (QoS 1) and records raw payloads, for checking JSON and CBOR alike. The listener is
 * attached before CONNACK because a persistent session delivers its queued messages right after it.
 */
export async function observe(url: string, clientId: string, filter: string, opts: { clean?: boolean } = {}): Promise<RawObserver> {
  const client = mqtt.connect(url, { clientId, clean: opts.clean ?? true, reconnectPeriod: 0 })
  const observer: RawObserver = { client, messages: [] }
  client.on('message', (topic, payload) => {
    if (topicMatches(filter, topic)) observer.messages.push({ topic, payload })
  })
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject))
  await client.subscribeAsync(filter, { qos: 1 })
  return observer
}

export const jsonOf = (payload: Buffer): unknown => JSON.parse(payload.toString('utf8'))
