/**
 * Brokers standing in for the cloud shim in the cloud-link tests: aedes in this process (with a
 * collector subscribed inside the broker before it listens, so nothing published is missed) and
 * mosquitto as a child process. Both listen on 127.0.0.1 and can be stopped and restarted on the
 * same port.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls'
import { Aedes, type AedesOptions, type AedesPublishPacket } from 'aedes'

export const MOSQUITTO = '/usr/sbin/mosquitto'
export const haveMosquitto = existsSync(MOSQUITTO)

export interface Received {
  topic: string
  payload: Buffer
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `predicate` every 10 ms; rejects with `what` after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

export interface TestAedes {
  readonly port: number
  readonly aedes: Aedes
  /** Every message published on the collector's filter, in arrival order, across restarts. */
  readonly received: Received[]
  /** Clients that connected, by client id, across restarts. */
  readonly connects: string[]
  /** Filters granted to clients, across restarts. */
  readonly subscribes: string[]
  /** Common names of the client certificates presented over TLS. */
  readonly peerNames: string[]
  /** Closes the listener, cuts every connection, closes aedes; a no-op when already stopped. */
  stop(): Promise<void>
  /** A fresh aedes (empty memory: sessions are gone) on the same port and collector. */
  restart(): Promise<void>
}

export interface TestAedesOptions {
  port?: number
  /** Collected filter (default 'up/#': the tests publish upstream traffic there). */
  filter?: string
  hooks?: Pick<AedesOptions, 'authorizePublish' | 'authenticate'>
  /** Listen with TLS (mutual when it asks for client certificates) instead of plain TCP. */
  tls?: TlsOptions
}

/** aedes on 127.0.0.1 with an in-broker collector. */
export async function startAedes(opts: TestAedesOptions = {}): Promise<TestAedes> {
  const received: Received[] = []
  const connects: string[] = []
  const subscribes: string[] = []
  const peerNames: string[] = []
  let aedes: Aedes
  let server: Server
  const sockets = new Set<Socket>()
  let port = opts.port ?? 0

  const up = async (): Promise<void> => {
    aedes = await Aedes.createBroker(opts.hooks ?? {})
    aedes.on('client', (client) => connects.push(client.id))
    aedes.on('subscribe', (subs) => subscribes.push(...subs.map((s) => s.topic)))
    const collect = (packet: AedesPublishPacket, cb: () => void): void => {
      received.push({ topic: packet.topic, payload: Buffer.from(packet.payload) })
      cb()
    }
    await new Promise<void>((resolve) => aedes.subscribe(opts.filter ?? 'up/#', collect, resolve))
    server = opts.tls === undefined ? createServer(aedes.handle) : createTlsServer(opts.tls, aedes.handle)
    server.on('secureConnection', (s: TLSSocket) => {
      const cn = s.getPeerCertificate().subject?.CN
      if (typeof cn === 'string') peerNames.push(cn)
    })
    server.on('connection', (s) => {
      sockets.add(s)
      s.once('close', () => sockets.delete(s))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    port = typeof address === 'object' && address !== null ? address.port : port
    running = true
  }

  let running = false
  const down = async (): Promise<void> => {
    if (!running) return
    running = false
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const s of sockets) s.destroy()
    await closed
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
  }

  await up()
  return {
    get port() { return port },
    get aedes() { return aedes },
    received,
    connects,
    subscribes,
    peerNames,
    stop: down,
    restart: up,
  }
}

export interface TestMosquitto {
  readonly port: number
  /** SIGTERM (mosquitto saves its persistence file) and wait for the exit. */
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * mosquitto on 127.0.0.1:`port` with a config in `dir`: anonymous, persistence in `dir` (so
 * sessions and queued messages survive a restart) and `extraConf` lines.
 */
export async function startMosquitto(dir: string, port: number, extraConf = ''): Promise<TestMosquitto> {
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dir}/`,
    // Started as root, mosquitto would switch to user 'mosquitto', which cannot write its
    // persistence file into our temp dir; as anyone else this line is ignored.
    `user ${userInfo().username}`,
    'max_queued_messages 0', 'log_dest stderr', 'log_type error', extraConf, '',
  ].join('\n'))
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    child = proc
    let stderr = ''
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${stderr}`))))
    exited.catch(() => {})
    await Promise.race([waitForPort(port, 10_000), exited])
  }
  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
    await gone
    clearTimeout(timer)
  }
  await start()
  return { port, start, stop }
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const attempt = (): Promise<boolean> => new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
  const deadline = Date.now() + timeoutMs
  while (!(await attempt())) {
    if (Date.now() > deadline) throw new Error(`port ${port} not accepting after ${timeoutMs} ms`)
    await sleep(20)
  }
}

/** A sequence-numbered payload, and its number back. */
export const seqPayload = (i: number, size = 0): Buffer => {
  const body = Buffer.alloc(Math.max(8, size))
  body.writeUInt32BE(i, 0)
  return body
}
export const seqOf = (payload: Buffer): number => payload.readUInt32BE(0)
