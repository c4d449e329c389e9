import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { topicMatches } from '../../coordinator/protocol/topic-filter.js'

/** Connects and resolves once CONNACK arrives; rejects on a refused connection. */
export function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    client.once('connect', () => resolve(client))
    client.once('error', (err) => {
      client.end(true)
      reject(err)
    })
  })
}

export interface Reply {
  topic: string
  status: string
  body: Record<string, unknown>
}

/**
 * Sends one shadow request and resolves with the first accepted/rejected reply to it, the way
 * device SDKs do: subscribe to the replies first, then publish.
 */
export async function shadowRequest(client: MqttClient, prefix: string, op: 'update' | 'get' | 'delete', payload: string | Buffer = ''): Promise<Reply> {
  const filters = [`${prefix}/${op}/accepted`, `${prefix}/${op}/rejected`]
  await client.subscribeAsync(filters, { qos: 1 })
  return new Promise((resolve) => {
    const onMessage = (topic: string, message: Buffer): void => {
      if (!filters.includes(topic)) return
      client.off('message', onMessage)
      resolve({ topic, status: topic.slice(topic.lastIndexOf('/') + 1), body: JSON.parse(message.toString()) as Record<string, unknown> })
    }
    client.on('message', onMessage)
    void client.publishAsync(`${prefix}/${op}`, payload, { qos: 1 })
  })
}

export interface Collected {
  /** Resolves once `count` messages have arrived on the filter. */
  done: Promise<Array<{ topic: string; body: Record<string, unknown> }>>
}

/** Subscribes to `filter` (resolving once SUBACK is in) and collects the next `count` messages. */
export async function collect(client: MqttClient, filter: string, count: number, timeoutMs = 10_000): Promise<Collected> {
  const got: Array<{ topic: string; body: Record<string, unknown> }> = []
  await client.subscribeAsync(filter, { qos: 1 })
  const done = new Promise<Array<{ topic: string; body: Record<string, unknown> }>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${count} messages on ${filter}`)), timeoutMs)
    const onMessage = (topic: string, message: Buffer): void => {
      if (!topicMatches(filter, topic)) return
      got.push({ topic, body: JSON.parse(message.toString()) as Record<string, unknown> })
      if (got.length === count) {
        clearTimeout(timer)
        client.off('message', onMessage)
        resolve(got)
      }
    }
    client.on('message', onMessage)
  })
  return { done }
}
