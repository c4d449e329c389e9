/**
 * The cloud link against a real Eclipse Mosquitto (an independent broker implementation), started
 * with a temp config on a free loopback port. Mosquitto keeps its sessions in a persistence file, so
 * a subscriber's persistent session (clean=false) collects what the link publishes across restarts.
 * Skipped when /usr/sbin/mosquitto is absent (Debian package `mosquitto`).
 */
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CloudLink, Outbox, type OutboxInput } from '../../coordinator/cloud/index.js'
import { freePort, haveMosquitto, seqOf, seqPayload, sleep, startMosquitto, waitUntil, type TestMosquitto } from '../helpers/cloud.js'
import { tempDir } from '../helpers/tmp.js'

if (!haveMosquitto) console.warn('/usr/sbin/mosquitto not installed; skipping the cloud link tests against mosquitto')

const THING = 'coord-mosq'
const APP = 'cloud-app'

const msg = (i: number, extra: Partial<OutboxInput> = {}): OutboxInput => ({ topic: `up/${THING}/seq`, payload: seqPayload(i, 100), qos: 1, ...extra })

describe.skipIf(!haveMosquitto)('CloudLink with mosquitto', () => {
  let tmp: ReturnType<typeof tempDir>
  let outbox: Outbox
  let mosquitto: TestMosquitto | undefined
  let link: CloudLink | undefined
  let app: MqttClient | undefined
  let seqs: number[]

  beforeEach(() => {
    tmp = tempDir('cloud-link-mosq-')
    outbox = Outbox.open(join(tmp.dir, 'outbox.sqlite'), { maxAttempts: 3 })
    seqs = []
  })

  afterEach(async () => {
    await link?.close()
    app?.end(true)
    await mosquitto?.stop()
    outbox.close()
    tmp.remove()
  })

  /** The cloud-side application: a persistent QoS 1 session that reconnects on its own. */
  async function startApp(port: number): Promise<void> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: APP, clean: false, reconnectPeriod: 50, protocolVersion: 4 })
    app = client
    client.on('message', (_topic, payload) => seqs.push(seqOf(payload)))
    client.on('error', () => {})
    await new Promise<void>((resolve) => client.once('connect', () => resolve()))
    await client.subscribeAsync(`up/${THING}/#`, { qos: 1 })
  }

  const newLink = (port: number): CloudLink => {
    link = new CloudLink({ url: `mqtt://127.0.0.1:${port}`, thingName: THING, outbox, backoff: { initialMs: 20, maxMs: 200 }, closeGraceMs: 200 })
    return link
  }

  const firstArrivals = (): { unique: number[]; duplicates: number } => {
    const seen = new Set<number>()
    const unique = seqs.filter((s) => !seen.has(s) && seen.add(s) !== undefined)
    return { unique, duplicates: seqs.length - unique.length }
  }

  it('delivers what was queued while mosquitto was down, in order, once it is up', async () => {
    const port = await freePort()
    mosquitto = await startMosquitto(tmp.dir, port)
    await startApp(port)
    await mosquitto.stop()
    const l = newLink(port)
    l.start()
    outbox.enqueueMany(Array.from({ length: 1000 }, (_, i) => msg(i)))
    await waitUntil(() => l.stats().lastError !== null, 5000, 'a refused connection')
    await mosquitto.start()
    await waitUntil(() => firstArrivals().unique.length === 1000, 15_000, 'all 1000 messages at the app')
    expect(firstArrivals().unique).toEqual(Array.from({ length: 1000 }, (_, i) => i))
    await waitUntil(() => outbox.stats().queued === 0, 5000, 'the outbox to empty')
    expect(outbox.stats().delivered).toBe(1000)
  })

  it('loses nothing when mosquitto restarts mid-stream under load', async () => {
    const port = await freePort()
    mosquitto = await startMosquitto(tmp.dir, port)
    await startApp(port)
    const l = newLink(port)
    l.start()
    const total = 5000
    for (let i = 0; i < total; i += 500) outbox.enqueueMany(Array.from({ length: 500 }, (_, k) => msg(i + k)))
    await waitUntil(() => l.stats().published >= 1000, 10_000, '1000 PUBACKs before the stop')
    await mosquitto.stop()
    const atStop = l.stats().published
    await sleep(200)
    await mosquitto.start()
    await waitUntil(() => firstArrivals().unique.length === total, 30_000, 'every message after the restart')
    const { unique, duplicates } = firstArrivals()
    expect(unique).toEqual(Array.from({ length: total }, (_, i) => i))
    await waitUntil(() => outbox.stats().queued === 0, 5000, 'the outbox to empty')
    expect(outbox.stats()).toMatchObject({ delivered: total, deadLettered: 0 })
    console.info(`mosquitto restart under load: ${total} messages, ${atStop} acked before the stop, ${duplicates} duplicates at the app`)
  })

  it('dead-letters a message over mosquitto\'s max_packet_size and delivers the rest in order', async () => {
    const port = await freePort()
    mosquitto = await startMosquitto(tmp.dir, port, 'max_packet_size 2048')
    await startApp(port)
    const l = newLink(port)
    outbox.enqueueMany(Array.from({ length: 30 }, (_, i) => (i === 12 ? msg(i, { payload: seqPayload(i, 4096) }) : msg(i))))
    l.start()
    await waitUntil(() => outbox.stats().queued === 0, 15_000, 'the outbox to empty')
    await waitUntil(() => firstArrivals().unique.length === 29, 5000, 'the 29 good messages')
    expect(firstArrivals().unique).toEqual(Array.from({ length: 30 }, (_, i) => i).filter((i) => i !== 12))
    const dead = outbox.deadLetters()
    expect(dead.map((d) => seqOf(d.payload))).toEqual([12])
    expect(dead[0]?.attempts).toBe(3)
  })
})
