import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Aedes, type AedesOptions } from 'aedes'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createBrokerPersistence } from '../../coordinator/store/broker-persistence.js'
import { openDatabase } from '../../coordinator/store/db.js'
import { tempDir } from '../helpers/tmp.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const PERSISTENT = { clientId: 'persistent-1', clean: false } as const

interface RunningBroker {
  aedes: Aedes
  url: string
  /** Closes the broker, its listener, the persistence and the database, in that order. */
  close(): Promise<void>
}

/** An aedes broker on 127.0.0.1 (port picked by the OS) persisting to `file`. */
async function startBroker(file: string, opts: AedesOptions = {}): Promise<RunningBroker> {
  const db = openDatabase(file)
  const persistence = createBrokerPersistence(db)
  const aedes = await Aedes.createBroker({ ...opts, persistence })
  const server = createServer(aedes.handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    aedes,
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await persistence.destroy()
      db.close()
    },
  }
}

interface Outgoing {
  topic: string
  payload: string
  retain?: boolean
}

interface Received {
  topic: string
  payload: string
  retain: boolean
}

interface Connected {
  client: MqttClient
  sessionPresent: boolean
  /** Every message since CONNECT: the listener is attached before queued messages can arrive. */
  received: Received[]
}

function connect(url: string, opts: IClientOptions = {}): Promise<Connected> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  const received: Received[] = []
  client.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString(), retain: packet.retain }))
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent, received }))
    client.once('error', (err) => {
      client.end(true)
      reject(err)
    })
  })
}

/** Resolves once `clientId` has acknowledged `count` QoS 1 deliveries, i.e. the broker cleared them. */
function acked(aedes: Aedes, clientId: string, count: number): Promise<void> {
  let seen = 0
  return new Promise((resolve) => {
    aedes.on('ack', (_packet, client) => {
      if (client.id === clientId && ++seen === count) resolve()
    })
  })
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Subscribes the persistent client, then leaves it offline with its session kept. */
async function leaveSubscribed(url: string, filter: string): Promise<void> {
  const { client } = await connect(url, PERSISTENT)
  await client.subscribeAsync(filter, { qos: 1 })
  await client.endAsync()
}

/** Publishes in order, each acknowledged (so enqueued by the broker) before the next. */
async function publishAll(url: string, messages: Outgoing[]): Promise<void> {
  const { client } = await connect(url)
  for (const { topic, payload, retain = false } of messages) await client.publishAsync(topic, payload, { qos: 1, retain })
  await client.endAsync()
}

function queuedMessages(prefix: string, count: number): Outgoing[] {
  const messages: Outgoing[] = Array.from({ length: count }, (_, i) => ({ topic: `${prefix}/data`, payload: `m${i}` }))
  // A retained message in the middle of the queue: queued like the others, and kept as retained.
  messages.splice(count / 2, 0, { topic: `${prefix}/state`, payload: 'state-1', retain: true })
  return messages
}

describe('broker sessions and retained messages across a restart', () => {
  let tmp: ReturnType<typeof tempDir>
  let file: string
  const cleanups: Array<() => Promise<void> | void> = []

  beforeEach(() => {
    tmp = tempDir('broker-restart-')
    file = join(tmp.dir, 'broker.sqlite')
  })

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    tmp.remove()
  })

  async function broker(opts: AedesOptions = {}): Promise<RunningBroker> {
    const running = await startBroker(file, opts)
    let closed = false
    cleanups.push(() => (closed ? undefined : running.close()))
    return { ...running, close: async () => { closed = true; await running.close() } }
  }

  async function client(url: string, opts: IClientOptions = {}): Promise<Connected> {
    const connected = await connect(url, opts)
    cleanups.push(() => { connected.client.end(true) })
    return connected
  }

  it('delivers queued QoS 1 messages once, in order, and keeps subscriptions and retained messages', async () => {
    const first = await broker()
    await leaveSubscribed(first.url, 'site/#')
    const messages = queuedMessages('site', 10)
    await publishAll(first.url, messages)
    await first.close()

    const second = await broker()
    const allAcked = acked(second.aedes, PERSISTENT.clientId, messages.length + 1)
    const persistent = await client(second.url, PERSISTENT)
    expect(persistent.sessionPresent).toBe(true)
    await until(() => persistent.received.length === messages.length, 'the queued messages')

    // The restored subscription routes live traffic without a new SUBSCRIBE.
    await publishAll(second.url, [{ topic: 'site/live', payload: 'live' }])
    await allAcked
    expect(persistent.received.map(({ topic, payload }) => ({ topic, payload }))).toEqual([
      ...messages.map(({ topic, payload }) => ({ topic, payload })),
      { topic: 'site/live', payload: 'live' },
    ])

    const newcomer = await client(second.url)
    await newcomer.client.subscribeAsync('site/state', { qos: 1 })
    await until(() => newcomer.received.length === 1, 'the retained message')
    expect(newcomer.received).toEqual([{ topic: 'site/state', payload: 'state-1', retain: true }])
    await second.close()

    // Everything acknowledged stays acknowledged: nothing is queued after another restart.
    const third = await broker()
    const again = await client(third.url, PERSISTENT)
    expect(again.sessionPresent).toBe(true)
    await publishAll(third.url, [{ topic: 'site/after', payload: 'after' }])
    await until(() => again.received.length > 0, 'the live message')
    expect(again.received.map((m) => m.payload)).toEqual(['after'])
  })

  describe('after SIGKILL of the broker process', () => {
    let child: ChildProcess | undefined

    afterEach(() => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      child = undefined
    })

    async function spawnBroker(): Promise<string> {
      const script = join(root, 'test/helpers/broker-persistence-child.mjs')
      expect(existsSync(join(root, 'dist/coordinator/store/broker-persistence.js')), 'run `npm run build` first').toBe(true)
      child = spawn(process.execPath, [script, file], { stdio: ['ignore', 'pipe', 'inherit'] })
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
      return `mqtt://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`
    }

    async function kill(): Promise<void> {
      const exited = once(child!, 'exit')
      child!.kill('SIGKILL')
      expect(await exited).toEqual([null, 'SIGKILL'])
    }

    it('loses no queued message, retained message or will', async () => {
      const url = await spawnBroker()
      await leaveSubscribed(url, 'plant/#')
      // Still connected when the broker dies: its will must survive and be sent later.
      const doomed = await client(url, { clientId: 'doomed', will: { topic: 'wills/doomed', payload: Buffer.from('gone'), qos: 1, retain: true } })
      const messages = queuedMessages('plant', 20)
      await publishAll(url, messages)
      await kill()
      doomed.client.end(true)

      // A short heartbeat so aedes' will sweep (every 4 heartbeats) runs soon.
      const restarted = await broker({ heartbeatInterval: 100 })
      const allAcked = acked(restarted.aedes, PERSISTENT.clientId, messages.length)
      const persistent = await client(restarted.url, PERSISTENT)
      expect(persistent.sessionPresent).toBe(true)
      await allAcked
      expect(persistent.received.map(({ topic, payload }) => ({ topic, payload }))).toEqual(messages.map(({ topic, payload }) => ({ topic, payload })))

      // The will is retained, so the watcher gets it whether the sweep ran before or after SUBSCRIBE.
      const watcher = await client(restarted.url)
      await watcher.client.subscribeAsync(['plant/state', 'wills/#'], { qos: 1 })
      await until(() => watcher.received.length === 2, 'the retained message and the will')
      expect(watcher.received.map(({ topic, payload }) => ({ topic, payload })).sort((a, b) => a.topic.localeCompare(b.topic))).toEqual([
        { topic: 'plant/state', payload: 'state-1' },
        { topic: 'wills/doomed', payload: 'gone' },
      ])
    })
  })
})
