import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { createServer as createHttpServer } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { IncomingMessage } from 'node:http'
import type { RefusalCounter, WebGuard } from '../core/web.js'

export interface ListenAddress {
  host: string
  port: number
}

export interface TlsMaterial {
  certPem: string
  keyPem: string
  caPem: string
}

export type ConnectionHandler = (stream: Duplex, req?: IncomingMessage) => void

/**
 * What a listener bounds before the broker sees a connection: the TLS handshake and the WebSocket
 * upgrade must finish within `connectTimeoutMs` (the broker then gives CONNECT as long again), and
 * a WebSocket message may not exceed `maxPacketBytes`.
 */
export interface ListenerBounds {
  connectTimeoutMs: number
  maxPacketBytes: number
  /** Told about each connection closed for missing that deadline (to count and log it). */
  onTimeout?: (listener: string, remoteAddress: string | undefined) => void
}

/** A started listener; `address` has the real port when 0 was asked for. */
export interface Listener {
  readonly name: string
  readonly address: ListenAddress
  close(): Promise<void>
}

/**
 * The CONNECT deadline of a plain TCP connection is the broker's (aedes `connectTimeout`).
 *
 * Nagle's algorithm would hold a shadow reply behind the PUBACK until the device's delayed ACK
 * (~40 ms on Linux): every request/reply round trip would take that long. MQTT packets are small
 * and already batched by the broker, so sockets send at once.
 */
export async function listenTcp(at: ListenAddress, handle: ConnectionHandler): Promise<Listener> {
  const server = createNetServer({ noDelay: true }, (socket) => handle(socket))
  return started('mqtt', server, at)
}

/**
 * Mutual TLS: a client certificate is asked for and verified against our CA, but a client without
 * one may still connect and authenticate with a token; the broker's authenticate hook decides.
 */
export async function listenTls(at: ListenAddress, tls: TlsMaterial, handle: ConnectionHandler, bounds: ListenerBounds): Promise<Listener> {
  const server = createTlsServer({
    // Also covers a socket that never sends its ClientHello.
    handshakeTimeout: bounds.connectTimeoutMs,
    cert: tls.certPem,
    key: tls.keyPem,
    ca: tls.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  }, (socket) => handle(socket.setNoDelay(true)))
  // With a listener here, Node leaves closing the failed socket to it.
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') bounds.onTimeout?.('mqtts', socket.remoteAddress)
    socket.destroy()
  })
  return started('mqtts', server, at)
}

/**
 * MQTT over WebSocket; accepts the subprotocols MQTT.js ('mqtt') and the AWS SDKs ('mqttv3.1')
 * send. ws buffers a whole message before handing it on, so `maxPayload` is what keeps an
 * oversized one out of memory; a message over it closes the connection (1009). `web` refuses
 * upgrades from other sites' pages (and under rebound host names) before any MQTT.
 */
export async function listenWebSocket(at: ListenAddress & { path: string }, handle: ConnectionHandler, bounds: ListenerBounds, web: WebGuard, refused: RefusalCounter): Promise<Listener> {
  const http = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n')
  })
  const wss = new WebSocketServer({
    server: http,
    path: at.path,
    handleProtocols: (protocols) => ['mqtt', 'mqttv3.1'].find((p) => protocols.has(p)) ?? false,
    verifyClient: fromAllowedPage(web, refused),
    maxPayload: bounds.maxPacketBytes,
  })
  const upgradeDeadlines = new WeakMap<Socket, NodeJS.Timeout>()
  http.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      bounds.onTimeout?.('ws', socket.remoteAddress)
      socket.destroy()
    }, bounds.connectTimeoutMs)
    upgradeDeadlines.set(socket, timer)
    socket.once('close', () => clearTimeout(timer))
  })
  wss.on('connection', (ws, req) => {
    clearTimeout(upgradeDeadlines.get(req.socket))
    handle(createWebSocketStream(ws), req)
  })
  const listener = await started('ws', http, at)
  return {
    ...listener,
    close: async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await listener.close()
    },
  }
}

type VerifyClient = (info: { origin?: string; req: IncomingMessage }, done: (ok: boolean, status?: number, message?: string) => void) => void

/** A WebSocket upgrade under a name we do not serve (DNS rebinding), or from another site's page, is refused. */
function fromAllowedPage(web: WebGuard, refused: RefusalCounter): VerifyClient {
  return (info, done) => {
    const host = info.req.headers.host
    if (!web.hostAllowed(host)) {
      refused.count('COORD_API_HOST_REFUSED', { host: (host ?? '').slice(0, 200) })
      return done(false, 421, 'Misdirected Request')
    }
    // ws reads Origin for us; non-browser clients (devices, SDKs) send none.
    if (!web.originAllowed(info.origin, host)) {
      refused.count('COORD_API_ORIGIN_REFUSED', { origin: (info.origin ?? '').slice(0, 200) })
      return done(false, 403, 'Forbidden')
    }
    done(true)
  }
}

/** Starts `server` and resolves once it listens (or rejects, e.g. EADDRINUSE). */
export function started(name: string, server: NetServer, at: ListenAddress): Promise<Listener> {
  const sockets = new Set<import('node:net').Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port, at.host, () => {
      server.off('error', reject)
      const addr = server.address() as AddressInfo
      resolve({
        name,
        address: { host: at.host, port: addr.port },
        close: () => new Promise<void>((done) => {
          server.close(() => done())
          for (const s of sockets) s.destroy()
        }),
      })
    })
  })
}
