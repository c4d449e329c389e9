/**
 * The broker's resource bounds, attacked through real sockets: oversized packets on TCP, TLS and
 * WebSocket (announced, then trickled), connections that never finish their handshake or never
 * send CONNECT, wrong-token floods (back-off per client id and per source address), and the
 * per-connection and per-session caps. Small limits are configured so every case ends on an
 * event (a close, a CONNACK, a SUBACK), never on a sleep.
 */
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { loadConfig } from '../../coordinator/config/index.js'
import type { Logger } from '../../coordinator/core/log.js'
import { Coordinator, databaseFile, type Endpoints } from '../../coordinator/kernel/coordinator.js'
import { hashToken } from '../../coordinator/pki/index.js'
import { DeviceStore, openDatabase } from '../../coordinator/store/index.js'
import { loadCloudConfig } from '../../cloud-shim/config/index.js'
import { CloudShim } from '../../cloud-shim/kernel/cloud-shim.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

const MAX_PACKET = 64 * 1024
/** Announced by the attacker: far beyond the limit, and beyond what a test should ever buffer. */
const ANNOUNCED = 50 * 1024 * 1024
/** What an attacker may write before the broker must have closed the connection. */
const TRICKLE_LIMIT = 4 * 1024 * 1024

type LogLine = Record<string, unknown> & { msg: string }

/** A logger that keeps every line, so tests can check what was refused was also logged. */
function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.length > 0) lines.push(JSON.parse(line) as LogLine)
      done()
    },
  })
  return { log: pino({ level: 'debug' }, sink), lines }
}

/** Waits for a log line; pino writes asynchronously to its stream. */
async function logged(lines: LogLine[], msg: string, match: (l: LogLine) => boolean = () => true): Promise<LogLine> {
  for (;;) {
    const line = lines.find((l) => l.msg === msg && match(l))
    if (line !== undefined) return line
    await new Promise((resolve) => setImmediate(resolve))
  }
}

// ---- MQTT 3.1.1 packets, by hand: the attacks need exact control over the bytes on the wire.

function remainingLength(n: number): Buffer {
  const bytes: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    bytes.push(byte)
  } while (n > 0)
  return Buffer.from(bytes)
}

const mqttString = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8')
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function connectPacket(clientId: string, password?: string): Buffer {
  const flags = 0x02 | (password === undefined ? 0 : 0xc0)
  const body = Buffer.concat([
    mqttString('MQTT'), Buffer.from([4, flags, 0, 60]), mqttString(clientId),
    ...(password === undefined ? [] : [mqttString(clientId), mqttString(password)]),
  ])
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body])
}

/** A PUBLISH fixed header announcing `length` bytes, and the start of its body. */
const publishHeader = (length: number, topic = 'things/attacker/x'): Buffer =>
  Buffer.concat([Buffer.from([0x30]), remainingLength(length), mqttString(topic)])

function qos2Publish(topic: string, messageId: number): Buffer {
  const body = Buffer.concat([mqttString(topic), Buffer.from([messageId >> 8, messageId & 0xff]), Buffer.from('x')])
  return Buffer.concat([Buffer.from([0x34]), remainingLength(body.length), body])
}

interface RawConnection {
  write(chunk: Buffer): Promise<void>
  /** Resolves on close; `closed` says whether it has happened. */
  readonly closing: Promise<void>
  readonly closed: boolean
  /** Bytes received so far. */
  readonly received: Buffer
  destroy(): void
}

function raw(socket: Socket): RawConnection {
  let closed = false
  let received = Buffer.alloc(0)
  socket.on('data', (b: Buffer) => { received = Buffer.concat([received, b]) })
  socket.on('error', () => {})
  const closing = new Promise<void>((resolve) => socket.once('close', () => { closed = true; resolve() }))
  return {
    write: (chunk) => new Promise((resolve) => { socket.write(chunk, () => resolve()) }),
    closing,
    get closed() { return closed },
    get received() { return received },
    destroy: () => socket.destroy(),
  }
}

const openTcp = (port: number, localAddress?: string): Promise<RawConnection> => new Promise((resolve, reject) => {
  const socket = netConnect({ host: '127.0.0.1', port, ...(localAddress === undefined ? {} : { localAddress }) }, () => resolve(raw(socket)))
  socket.once('error', reject)
})

const openTls = (port: number): Promise<RawConnection> => new Promise((resolve, reject) => {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(raw(socket)))
  socket.once('error', reject)
})

/** Waits until `bytes` have been received (a CONNACK, a SUBACK) or the connection closed. */
async function receivedAtLeast(c: RawConnection, bytes: number): Promise<Buffer> {
  while (c.received.length < bytes && !c.closed) await new Promise((resolve) => setImmediate(resolve))
  return c.received
}

/** CONNECT, then the CONNACK's return code (undefined when the connection closed first). */
async function mqttConnect(c: RawConnection, clientId: string, password?: string): Promise<number | undefined> {
  await c.write(connectPacket(clientId, password))
  const got = await receivedAtLeast(c, 4)
  return got.length >= 4 && got[0] === 0x20 ? got[3] : undefined
}

/** Sends the header, then the body in 16 KB pieces until the broker closes or TRICKLE_LIMIT is written. */
async function trickleOversized(write: (b: Buffer) => Promise<void>, isClosed: () => boolean): Promise<number> {
  await write(publishHeader(ANNOUNCED))
  const piece = Buffer.alloc(16 * 1024, 0x61)
  let sent = 0
  while (!isClosed() && sent < TRICKLE_LIMIT) {
    await write(piece)
    sent += piece.length
    // The broker runs in this process: let it read.
    await new Promise((resolve) => setImmediate(resolve))
  }
  return sent
}

interface Harness {
  endpoints: Required<Endpoints>
  lines: LogLine[]
  dataDir: string
  stop(): Promise<void>
}

async function startHarness(overrides: Record<string, unknown>, devices: Array<{ name: string; token: string }> = []): Promise<Harness> {
  const tmp = tempDir('edge-coord-limits-')
  if (devices.length > 0) {
    const db = openDatabase(databaseFile(tmp.dir))
    const store = new DeviceStore(db)
    for (const d of devices) store.add({ name: d.name, attributes: {}, policies: [], certFingerprint: null, tokenHash: hashToken(d.token), createdAt: Date.now() })
    db.close()
  }
  const { log, lines } = capturingLogger()
  const config = loadConfig({
    overrides: { dataDir: tmp.dir, listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, ws: { port: 0 }, http: { port: 0 } }, ...overrides },
  })
  const coordinator = await Coordinator.start(config, log)
  return {
    endpoints: coordinator.endpoints as Required<Endpoints>,
    lines,
    dataDir: tmp.dir,
    stop: async () => {
      await coordinator.close()
      tmp.remove()
    },
  }
}

describe('broker limits: packet size', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness({ broker: { maxPacketBytes: MAX_PACKET } })
  })
  afterAll(() => h?.stop())

  it('closes a TCP connection whose PUBLISH announces 50 MB, before taking its payload, and logs it', async () => {
    const c = await openTcp(h.endpoints.mqtt.port)
    expect(await mqttConnect(c, 'attacker')).toBe(0)
    const sent = await trickleOversized(c.write, () => c.closed)
    expect(sent).toBeLessThan(TRICKLE_LIMIT)
    await c.closing
    const line = await logged(h.lines, 'packet too large: connection closed', (l) => l.clientId === 'attacker')
    expect(line).toMatchObject({ cmd: 'publish', maxBytes: MAX_PACKET })
    expect(line.bytes).toBeGreaterThan(ANNOUNCED)
  })

  it('bounds a CONNECT too, before the client is authenticated', async () => {
    const c = await openTcp(h.endpoints.mqtt.port)
    await c.write(Buffer.concat([Buffer.from([0x10]), remainingLength(ANNOUNCED)]))
    await c.closing
    await logged(h.lines, 'packet too large: connection closed', (l) => l.cmd === 'connect')
  })

  it('closes a TLS connection the same way', async () => {
    const c = await openTls(h.endpoints.mqtts.port)
    expect(await mqttConnect(c, 'tls-attacker')).toBe(0)
    const sent = await trickleOversized(c.write, () => c.closed)
    expect(sent).toBeLessThan(TRICKLE_LIMIT)
    await c.closing
    await logged(h.lines, 'packet too large: connection closed', (l) => l.clientId === 'tls-attacker')
  })

  it('closes a WebSocket connection whose packet is trickled over many small messages', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.endpoints.ws.port}/mqtt`, 'mqtt')
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    // aedes may write a packet in several pieces, each its own WebSocket message.
    let received = Buffer.alloc(0)
    const connack = new Promise<Buffer>((resolve) => ws.on('message', (m: Buffer) => {
      received = Buffer.concat([received, m])
      if (received.length >= 4) resolve(received)
    }))
    ws.send(connectPacket('ws-attacker'))
    expect((await connack)[3]).toBe(0)
    let isClosed = false
    void closed.then(() => { isClosed = true })
    const sent = await trickleOversized((b) => new Promise((resolve) => ws.send(b, () => resolve())), () => isClosed)
    expect(sent).toBeLessThan(TRICKLE_LIMIT)
    await closed
    await logged(h.lines, 'packet too large: connection closed', (l) => l.clientId === 'ws-attacker')
  })

  it('closes a WebSocket connection sending one message over the limit (1009), which ws never buffers whole', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.endpoints.ws.port}/mqtt`, 'mqtt')
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    ws.on('error', () => {})
    await new Promise((resolve) => ws.once('open', resolve))
    ws.send(Buffer.alloc(MAX_PACKET + 1))
    expect(await closed).toBe(1009)
    await logged(h.lines, 'WebSocket message too large: connection closed')
  })

  it('still delivers a packet just under the limit', async () => {
    const sub = await connect(`mqtt://127.0.0.1:${h.endpoints.mqtt.port}`, { clientId: 'big-ok' })
    try {
      await sub.subscribeAsync('things/big-ok/data')
      const topic = 'things/big-ok/data'
      const payload = Buffer.alloc(MAX_PACKET - 64, 0x62)
      const got = new Promise<Buffer>((resolve) => sub.once('message', (_t, p: Buffer) => resolve(p)))
      await sub.publishAsync(topic, payload)
      expect((await got).length).toBe(payload.length)
    } finally {
      await sub.endAsync()
    }
  })
})

describe('broker limits: pre-handshake deadlines', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness({ broker: { connectTimeoutMs: 200 } })
  })
  afterAll(() => h?.stop())

  it('closes a TCP socket that never sends CONNECT', async () => {
    const c = await openTcp(h.endpoints.mqtt.port)
    await c.closing
    await logged(h.lines, 'no CONNECT in time: connection closed')
  })

  it('closes a socket on the TLS port that never sends its ClientHello', async () => {
    const c = await openTcp(h.endpoints.mqtts.port)
    await c.closing
    await logged(h.lines, 'handshake not finished in time: connection closed', (l) => l.listener === 'mqtts')
  })

  it('closes a socket on the WebSocket port that never sends its upgrade request', async () => {
    const c = await openTcp(h.endpoints.ws.port)
    await c.closing
    await logged(h.lines, 'handshake not finished in time: connection closed', (l) => l.listener === 'ws')
  })

  it('closes an upgraded WebSocket that never sends CONNECT', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.endpoints.ws.port}/mqtt`, 'mqtt')
    await new Promise((resolve) => ws.once('close', resolve))
    expect(ws.readyState).toBe(WebSocket.CLOSED)
  })
})

describe('broker limits: token checks', () => {
  const GOOD = 'lamp-tok'
  const OTHER = 'plug-tok'
  let h: Harness
  beforeAll(async () => {
    h = await startHarness(
      { auth: { allowAnonymousLoopback: false }, broker: { tokenBackoff: { freeFailures: 2, baseMs: 600_000, maxMs: 600_000 } } },
      [{ name: GOOD, token: 'good-token-1' }, { name: OTHER, token: 'good-token-2' }],
    )
  })
  afterAll(() => h?.stop())

  const attempt = async (clientId: string, password: string, localAddress?: string): Promise<number | undefined> => {
    const c = await openTcp(h.endpoints.mqtt.port, localAddress)
    try {
      return await mqttConnect(c, clientId, password)
    } finally {
      c.destroy()
    }
  }

  it('backs off a client id and a source address after repeated wrong tokens, without checking them', async () => {
    // The attacker comes from 127.0.0.2 and guesses GOOD's token.
    expect(await attempt(GOOD, 'wrong-1', '127.0.0.2')).toBe(4)
    expect(await attempt(GOOD, 'wrong-2', '127.0.0.2')).toBe(4)
    const backoff = await logged(h.lines, 'failed token checks: further attempts wait')
    expect(backoff).toMatchObject({ clientId: GOOD, address: '127.0.0.2', failures: 2, tokenFailed: 2 })
    // Now refused unchecked: by its client id from anywhere, and anything from its address.
    expect(await attempt(GOOD, 'good-token-1', '127.0.0.1')).toBe(4)
    expect(await attempt(OTHER, 'good-token-2', '127.0.0.2')).toBe(4)
    const throttled = h.lines.filter((l) => l.msg === 'connection refused' && String(l.reason).startsWith('too many failed token checks'))
    expect(throttled).toHaveLength(2)
    // Another device from a clean address is not affected.
    expect(await attempt(OTHER, 'good-token-2', '127.0.0.1')).toBe(0)
  })
})

describe('broker limits: per-client caps', () => {
  let h: Harness
  const all = { name: 'q-all', statements: [{ effect: 'allow', actions: ['publish', 'subscribe'], resources: ['q/#'] }] }
  beforeAll(async () => {
    h = await startHarness({
      broker: { maxSubscriptionsPerClient: 3, maxQueuedPerClient: 3, maxInflightPerClient: 3 },
      policies: [all],
      auth: { anonymousPolicies: ['q-all'] },
    })
  })
  afterAll(() => h?.stop())

  const url = (): string => `mqtt://127.0.0.1:${h.endpoints.mqtt.port}`

  it('refuses subscriptions beyond maxSubscriptionsPerClient with 0x80; re-subscribing and unsubscribing keep the count right', async () => {
    const c = await connect(url(), { clientId: 'subcap' })
    try {
      const granted = await c.subscribeAsync(['q/a', 'q/b', 'q/c'])
      expect(granted.map((g) => g.qos)).toEqual([0, 0, 0])
      // MQTT.js rejects a SUBACK holding 0x80; the policy allows q/#, so the cap refused it.
      await expect(c.subscribeAsync('q/d')).rejects.toThrow(/Subscribe error/)
      await logged(h.lines, 'subscribe refused: too many subscriptions on this connection', (l) => l.topic === 'q/d')
      expect((await c.subscribeAsync('q/a'))[0]?.qos).toBe(0)
      await c.unsubscribeAsync('q/b')
      expect((await c.subscribeAsync('q/d'))[0]?.qos).toBe(0)
    } finally {
      await c.endAsync()
    }
  })

  it('keeps at most maxQueuedPerClient messages for an offline session and drops newer ones, logged', async () => {
    const sub = await connect(url(), { clientId: 'q-offline', clean: false })
    await sub.subscribeAsync('q/offline', { qos: 1 })
    await sub.endAsync()
    const pub = await connect(url(), { clientId: 'q-pub' })
    for (let i = 0; i < 5; i++) await pub.publishAsync('q/offline', `m${i}`, { qos: 1 })
    await logged(h.lines, 'session queue full: newer QoS 1/2 messages for it are dropped', (l) => l.dropped === 2)
    const received: string[] = []
    const back = await connect(url(), { clientId: 'q-offline', clean: false })
    try {
      const marker = new Promise<void>((resolve) => back.on('message', (_t, p: Buffer) => {
        received.push(p.toString())
        if (p.toString() === 'marker') resolve()
      }))
      // Published once the queue has drained to the reconnected client, so it is not dropped.
      await receivedCount(received, 3)
      await pub.publishAsync('q/offline', 'marker', { qos: 1 })
      await marker
      expect(received).toEqual(['m0', 'm1', 'm2', 'marker'])
    } finally {
      await back.endAsync()
      await pub.endAsync()
    }
  })

  it('closes a connection with more than maxInflightPerClient QoS 2 messages awaiting PUBREL', async () => {
    const c = await openTcp(h.endpoints.mqtt.port)
    expect(await mqttConnect(c, 'q-inflight')).toBe(0)
    for (let id = 1; id <= 3; id++) await c.write(qos2Publish('q/inflight', id))
    // Three PUBRECs (4 bytes each) after the CONNACK: the window is full, the connection still open.
    expect((await receivedAtLeast(c, 4 + 3 * 4)).length).toBe(16)
    expect(c.closed).toBe(false)
    await c.write(qos2Publish('q/inflight', 4))
    await c.closing
  })
})

async function receivedCount(list: unknown[], n: number): Promise<void> {
  while (list.length < n) await new Promise((resolve) => setImmediate(resolve))
}

describe('broker limits on the cloud shim embedded broker', () => {
  let shim: CloudShim
  let lines: LogLine[]
  const tmp = tempDir('edge-cloud-limits-')
  beforeAll(async () => {
    const captured = capturingLogger()
    lines = captured.lines
    const config = loadCloudConfig({
      overrides: {
        dataDir: tmp.dir,
        listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, http: { port: 0 } },
        brokerLimits: { maxPacketBytes: MAX_PACKET, connectTimeoutMs: 200 },
      },
    })
    shim = await CloudShim.start(config, captured.log)
  })
  afterAll(async () => {
    await shim?.close()
    tmp.remove()
  })

  it('closes an oversized packet and a silent socket as the coordinator does', async () => {
    const port = shim.endpoints.mqtt?.port ?? 0
    const big = await openTcp(port)
    expect(await mqttConnect(big, 'cloud-attacker')).toBe(0)
    const sent = await trickleOversized(big.write, () => big.closed)
    expect(sent).toBeLessThan(TRICKLE_LIMIT)
    await big.closing
    await logged(lines, 'packet too large: connection closed', (l) => l.clientId === 'cloud-attacker')
    const silent = await openTcp(port)
    await silent.closing
    await logged(lines, 'no CONNECT in time: connection closed')
    const tlsSilent = await openTcp(shim.endpoints.mqtts?.port ?? 0)
    await tlsSilent.closing
    await logged(lines, 'handshake not finished in time: connection closed', (l) => l.listener === 'mqtts')
  })
})
