/**
 * The cloud link against a real aedes broker on loopback: offline queueing, broker restarts under
 * load, poison messages, ack timeouts, backoff timing, subscriptions across reconnects.
 */
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CloudLink, Outbox, type CloudLinkOptions, type OutboxInput } from '../../coordinator/cloud/index.js'
import { createCa, issueClientCert, issueServerCert } from '../../coordinator/pki/index.js'
import { freePort, seqOf, seqPayload, sleep, startAedes, waitUntil, type Received, type TestAedes } from '../helpers/cloud.js'
import { tempDir } from '../helpers/tmp.js'

const THING = 'coord-test'

/** Per seq: how often it arrived, and whether first arrivals came in increasing order. */
function analyse(received: readonly Received[]): { unique: number; duplicates: number; firstArrivalOrdered: boolean } {
  const seen = new Set<number>()
  let duplicates = 0
  let last = -1
  let ordered = true
  for (const r of received) {
    const seq = seqOf(r.payload)
    if (seen.has(seq)) {
      duplicates++
      continue
    }
    seen.add(seq)
    if (seq < last) ordered = false
    last = seq
  }
  return { unique: seen.size, duplicates, firstArrivalOrdered: ordered }
}

const msg = (i: number, extra: Partial<OutboxInput> = {}): OutboxInput => ({ topic: `up/${THING}/seq`, payload: seqPayload(i), qos: 1, ...extra })

describe('CloudLink with aedes', () => {
  let tmp: ReturnType<typeof tempDir>
  let outbox: Outbox
  const links: CloudLink[] = []
  const brokers: TestAedes[] = []
  const servers: Server[] = []

  beforeEach(() => {
    tmp = tempDir('cloud-link-')
    outbox = Outbox.open(join(tmp.dir, 'outbox.sqlite'), { maxAttempts: 3 })
  })

  afterEach(async () => {
    for (const link of links.splice(0)) await link.close()
    for (const broker of brokers.splice(0)) await broker.stop()
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve))
    outbox.close()
    tmp.remove()
  })

  const link = (port: number, extra: Partial<CloudLinkOptions> = {}): CloudLink => {
    const l = new CloudLink({
      url: `mqtt://127.0.0.1:${port}`, thingName: THING, outbox,
      backoff: { initialMs: 20, maxMs: 200 }, ackTimeoutMs: 2000, closeGraceMs: 200, ...extra,
    })
    links.push(l)
    return l
  }

  const aedes = async (opts: Parameters<typeof startAedes>[0] = {}): Promise<TestAedes> => {
    const b = await startAedes(opts)
    brokers.push(b)
    return b
  }

  it('queues while the broker is down and delivers everything in order, higher priority first, once it is up', async () => {
    const port = await freePort()
    const l = link(port)
    l.start()
    const results = outbox.enqueueMany(Array.from({ length: 500 }, (_, i) => msg(i)))
    expect(results.every((r) => r.accepted)).toBe(true)
    outbox.enqueue(msg(10_000, { priority: 1 }))
    await waitUntil(() => l.stats().lastError !== null, 5000, 'a failed connection attempt')
    expect(l.state).not.toBe('connected')
    expect(l.stats().lastError?.message).toMatch(/ECONNREFUSED/)
    expect(outbox.stats().queued).toBe(501)

    const broker = await aedes({ port })
    await waitUntil(() => broker.received.length >= 501, 10_000, 'all messages at the broker')
    const seqs = broker.received.map((r) => seqOf(r.payload))
    expect(seqs[0]).toBe(10_000)
    expect(seqs.slice(1)).toEqual(Array.from({ length: 500 }, (_, i) => i))
    await waitUntil(() => outbox.stats().queued === 0, 5000, 'the outbox to empty')
    expect(outbox.stats().delivered).toBe(501)
    expect(l.stats()).toMatchObject({ state: 'connected', published: 501, nacked: 0, inFlight: 0 })
    expect(broker.connects).toContain(THING)
  })

  it('loses nothing when the broker stops mid-stream under load and comes back (duplicates counted, first arrivals in order)', async () => {
    const broker = await aedes()
    const l = link(broker.port, { window: 64 })
    l.start()
    const total = 5000
    for (let i = 0; i < total; i += 250) {
      outbox.enqueueMany(Array.from({ length: 250 }, (_, k) => msg(i + k, { payload: seqPayload(i + k, 200) })))
      await sleep(1)
    }
    await waitUntil(() => broker.received.length >= 1500, 10_000, '1500 messages before the stop')
    await broker.stop()
    const atStop = broker.received.length
    expect(atStop).toBeLessThan(total)
    await sleep(300)
    expect(l.state).not.toBe('connected')
    await broker.restart()
    await waitUntil(() => analyse(broker.received).unique === total, 20_000, 'every message after the restart')
    const { duplicates, firstArrivalOrdered } = analyse(broker.received)
    expect(firstArrivalOrdered).toBe(true)
    expect(duplicates).toBeLessThanOrEqual(64)
    await waitUntil(() => outbox.stats().queued === 0, 5000, 'the outbox to empty')
    expect(outbox.stats()).toMatchObject({ delivered: total, deadLettered: 0 })
    expect(l.stats().connects).toBeGreaterThanOrEqual(2)
    console.info(`broker restart under load: ${total} messages, ${atStop} before the stop, ${duplicates} duplicates`)
  })

  it('dead-letters a message the broker refuses (it drops the connection) and the rest flow in order', async () => {
    const broker = await aedes({
      hooks: { authorizePublish: (_client, packet, done) => done(packet.topic.endsWith('/poison') ? new Error('refused') : null) },
    })
    const l = link(broker.port)
    outbox.enqueueMany(Array.from({ length: 40 }, (_, i) => (i === 15 ? msg(i, { topic: `up/${THING}/poison` }) : msg(i))))
    l.start()
    await waitUntil(() => broker.received.length >= 39, 10_000, 'the 39 good messages')
    await waitUntil(() => outbox.stats().queued === 0, 5000, 'the outbox to empty')
    const good = analyse(broker.received)
    expect(good).toMatchObject({ unique: 39, firstArrivalOrdered: true })
    expect(broker.received.some((r) => r.topic.endsWith('/poison'))).toBe(false)
    const dead = outbox.deadLetters()
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ topic: `up/${THING}/poison`, attempts: 3 })
    expect(dead[0]?.lastError).toMatch(/connection lost/)
    expect(outbox.stats()).toMatchObject({ deadLettered: 1, deadLetters: 1, delivered: 39 })
    expect(l.stats().nacked).toBe(3)
  })

  it('cuts a connection whose PUBACK never comes, and a message that always stalls it ends up dead-lettered', async () => {
    const broker = await aedes({
      // A black hole: the PUBACK for this topic never comes and the connection stays up.
      hooks: { authorizePublish: (_client, packet, done) => { if (!packet.topic.endsWith('/stall')) done(null) } },
    })
    const l = link(broker.port, { ackTimeoutMs: 150 })
    outbox.enqueueMany([msg(0), msg(1, { topic: `up/${THING}/stall` }), msg(2)])
    l.start()
    await waitUntil(() => outbox.stats().deadLettered === 1, 10_000, 'the stalled message to be dead-lettered')
    await waitUntil(() => analyse(broker.received).unique === 2, 5000, 'the two good messages')
    expect(outbox.deadLetters()[0]).toMatchObject({ topic: `up/${THING}/stall` })
    expect(l.stats().connects).toBeGreaterThanOrEqual(4)
  })

  it('spaces reconnect attempts by a growing, jittered backoff', async () => {
    // A server that accepts TCP and hangs up at once: every attempt fails after connecting.
    const attempts: number[] = []
    const server = createServer((socket) => {
      attempts.push(performance.now())
      socket.destroy()
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    const l = link(port, { backoff: { initialMs: 40, maxMs: 640 }, random: () => 0.999 })
    l.start()
    await waitUntil(() => attempts.length >= 6, 10_000, 'six connection attempts')
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] as number))
    // Ceilings 40, 80, 160, 320, 640 ms; random() = 0.999 puts each delay just under its ceiling.
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(Math.min(640, 40 * 2 ** i) * 0.9))
    expect(l.stats().backoffAttempt).toBeGreaterThanOrEqual(5)
  })

  it('resets the backoff once a connection has stayed up for stableMs', async () => {
    const port = await freePort()
    const stable = link(port, { backoff: { initialMs: 40, maxMs: 640 }, stableMs: 300, random: () => 0.999 })
    stable.start()
    await waitUntil(() => stable.stats().backoffAttempt >= 2, 5000, 'two refused attempts')
    const broker = await aedes({ port })
    await waitUntil(() => stable.state === 'connected', 5000, 'connected')
    expect(stable.stats().backoffAttempt).toBeGreaterThanOrEqual(2)
    await waitUntil(() => stable.stats().backoffAttempt === 0, 2000, 'the reset after stableMs')
    await broker.stop()
    await waitUntil(() => stable.state !== 'connected', 5000, 'the link to notice')
    expect(stable.stats().backoffAttempt).toBe(1)
  })

  it('routes cloud messages to subscribers and subscribes again after the broker lost the session', async () => {
    const broker = await aedes()
    const l = link(broker.port)
    const got: string[] = []
    const unsubscribe = await l.subscribe(`down/${THING}/+`, (topic, payload) => got.push(`${topic}=${payload.toString()}`))
    l.start()
    await waitUntil(() => l.state === 'connected', 5000, 'connected')
    await waitUntil(() => broker.subscribes.length === 1, 5000, 'the subscription at the broker')
    const publish = (topic: string, body: string): Promise<void> => new Promise((resolve, reject) => {
      broker.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(body), qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve()))
    })
    await publish(`down/${THING}/config`, 'one')
    await waitUntil(() => got.length === 1, 5000, 'the first cloud message')

    await broker.stop()
    await broker.restart()
    await waitUntil(() => broker.subscribes.length === 2, 5000, 'the subscription made again')
    await publish(`down/${THING}/config`, 'two')
    await publish(`down/other/config`, 'not mine')
    await waitUntil(() => got.length === 2, 5000, 'the second cloud message')
    expect(got).toEqual([`down/${THING}/config=one`, `down/${THING}/config=two`])

    await unsubscribe()
    await publish(`down/${THING}/config`, 'three')
    await sleep(100)
    expect(got).toHaveLength(2)
    expect(l.stats().subscriptions).toEqual([])
  })

  it('connects over mutual TLS with the coordinator\'s client certificate, and not without one', async () => {
    const ca = await createCa({ commonName: 'Cloud Test CA' })
    const server = await issueServerCert(ca, { hosts: ['127.0.0.1'] })
    const client = await issueClientCert(ca, { thingName: THING })
    const broker = await aedes({ tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true } })
    outbox.enqueueMany([msg(1), msg(2)])
    const bare = link(broker.port, { url: `mqtts://127.0.0.1:${broker.port}`, tls: { ca: ca.certPem } })
    bare.start()
    await waitUntil(() => bare.stats().lastError !== null && bare.stats().connects === 0, 5000, 'the handshake without a certificate to fail')
    await bare.close()

    const l = link(broker.port, { url: `mqtts://127.0.0.1:${broker.port}`, tls: { ca: ca.certPem, cert: client.certPem, key: client.keyPem } })
    l.start()
    await waitUntil(() => broker.received.length === 2, 5000, 'both messages over TLS')
    expect(broker.peerNames).toContain(THING)
  })

  it('authenticates with username and password, and keeps retrying when refused', async () => {
    const broker = await aedes({
      hooks: {
        authenticate: (_client, username, password, done) => {
          const ok = username === THING && password?.toString() === 's3cret'
          done(ok ? null : Object.assign(new Error('bad credentials'), { returnCode: 4 }), ok)
        },
      },
    })
    outbox.enqueue(msg(1))
    const wrong = link(broker.port, { username: THING, password: 'nope' })
    wrong.start()
    await waitUntil(() => wrong.stats().backoffAttempt >= 2, 5000, 'two refused attempts')
    expect(wrong.stats()).toMatchObject({ connects: 0, state: expect.stringMatching(/connecting|disconnected/) })
    expect(wrong.stats().lastError?.message).toMatch(/Bad username or password/)
    await wrong.close()

    const right = link(broker.port, { username: THING, password: Buffer.from('s3cret') })
    right.start()
    await waitUntil(() => broker.received.length === 1, 5000, 'the message once authenticated')
  })

  it('publishNow sends QoS 0 past the outbox while connected and refuses while not', async () => {
    const port = await freePort()
    const l = link(port)
    l.start()
    expect(l.publishNow(`up/${THING}/now`, 'lost')).toBe(false)
    const broker = await aedes({ port })
    await waitUntil(() => l.state === 'connected', 5000, 'connected')
    expect(l.publishNow(`up/${THING}/now`, seqPayload(7))).toBe(true)
    await waitUntil(() => broker.received.length === 1, 5000, 'the QoS 0 message')
    expect(broker.received[0]?.topic).toBe(`up/${THING}/now`)
    expect(outbox.stats().delivered).toBe(0)
    expect(l.stats().publishedNow).toBe(1)
    expect(() => l.publishNow('up/#', 'x')).toThrow(/invalid topic/)
  })

  it('close() disconnects, stops draining, and the outbox keeps accepting', async () => {
    const broker = await aedes()
    const l = link(broker.port)
    const states: string[] = []
    l.onState((s) => states.push(s))
    l.start()
    await waitUntil(() => l.state === 'connected', 5000, 'connected')
    await l.close()
    expect(l.state).toBe('disconnected')
    expect(states).toEqual(['connecting', 'connected', 'disconnected'])
    await waitUntil(() => broker.aedes.connectedClients === 0, 5000, 'the broker to see the disconnect')
    expect(outbox.enqueue(msg(1)).accepted).toBe(true)
    await sleep(100)
    expect(broker.received).toHaveLength(0)
    expect(outbox.stats().queued).toBe(1)
  })
})
