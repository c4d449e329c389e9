import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { started, type ListenAddress, type Listener } from '../broker/index.js'
import { isLoopbackHost } from '../config/index.js'
import { K, type Logger } from '../core/log.js'
import type { ShadowService } from '../shadow/index.js'
import type { ShadowRef } from '../protocol/index.js'

export interface ApiOptions {
  shadows: ShadowService
  /** Readiness: true once every listener is up. */
  isReady(): boolean
  /** Bearer token required from non-loopback callers. */
  token: string
  log: Logger
}

const MAX_BODY_BYTES = 64 * 1024

type Handler = (req: IncomingMessage, url: URL, body: Buffer) => Promise<[number, unknown]>

/**
 * The local HTTP API. Shadow routes follow the AWS IoT data-plane REST paths
 * (`/things/{thing}/shadow?name=`, `/api/things/shadow/ListNamedShadowsForThing/{thing}`).
 */
export async function startApi(at: ListenAddress, opts: ApiOptions): Promise<Listener> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err: Error) => {
      opts.log.error({ [K.err]: err.message }, 'api request failed')
      send(res, 500, { code: 500, message: 'Internal service failure' })
    })
  })
  return started('http', server, at)
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: ApiOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost')
  if (!isAuthorized(req.socket.remoteAddress ?? '', req.headers.authorization, opts.token)) return send(res, 401, { code: 401, message: 'Unauthorized' })
  const route = match(req.method ?? 'GET', url.pathname, opts)
  if (route === null) return send(res, 404, { code: 404, message: `no route for ${req.method} ${url.pathname}` })
  if (route === 'method') return send(res, 405, { code: 405, message: `method ${req.method} not allowed on ${url.pathname}` })
  const body = await readBody(req)
  if (body === null) return send(res, 413, { code: 413, message: 'The payload exceeds the maximum size allowed' })
  const [status, json] = await route(req, url, body)
  send(res, status, json)
}

function match(method: string, path: string, opts: ApiOptions): Handler | 'method' | null {
  if (path === '/healthz') return method === 'GET' ? async () => [200, { status: 'ok' }] : 'method'
  if (path === '/readyz') {
    return method === 'GET' ? async () => (opts.isReady() ? [200, { ready: true }] : [503, { ready: false }]) : 'method'
  }
  const shadow = /^\/things\/([^/]+)\/shadow$/.exec(path)
  if (shadow?.[1] !== undefined) return shadowRoute(method, decodeURIComponent(shadow[1]), opts)
  const list = /^\/api\/things\/shadow\/ListNamedShadowsForThing\/([^/]+)$/.exec(path)
  if (list?.[1] !== undefined) return method === 'GET' ? listRoute(decodeURIComponent(list[1]), opts) : 'method'
  return null
}

function shadowRoute(method: string, thingName: string, opts: ApiOptions): Handler | 'method' {
  const refOf = (url: URL): ShadowRef => {
    const name = url.searchParams.get('name')
    return name === null || name === '' ? { thingName } : { thingName, shadowName: name }
  }
  const reply = (r: { status: number; body: unknown }): [number, unknown] => [r.status, r.body]
  switch (method) {
    case 'GET': return async (_req, url) => reply(await opts.shadows.get(refOf(url)))
    case 'POST': return async (_req, url, body) => reply(await opts.shadows.update(refOf(url), body))
    case 'DELETE': return async (_req, url) => reply(await opts.shadows.delete(refOf(url)))
    default: return 'method'
  }
}

function listRoute(thingName: string, opts: ApiOptions): Handler {
  return async (_req, url) => {
    const raw = url.searchParams.get('pageSize') ?? '25'
    const pageSize = Number(raw)
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
      return [400, { code: 400, message: `pageSize must be an integer from 1 to 100, got '${raw}'` }]
    }
    return [200, opts.shadows.listNamed(thingName, pageSize, url.searchParams.get('nextToken') ?? undefined)]
  }
}

/** Loopback callers are trusted (they share the board); anyone else needs the bearer token. */
export function isAuthorized(remoteAddress: string, authorization: string | undefined, token: string): boolean {
  if (isLoopbackHost(remoteAddress.replace(/^::ffff:/, ''))) return true
  const given = Buffer.from(/^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '')
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** Reads the body, or resolves null once it passes the size cap. */
function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        resolve(null)
        req.resume()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}
