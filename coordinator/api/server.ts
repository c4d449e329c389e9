import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { started, type ListenAddress, type Listener } from '../broker/index.js'
import { isLoopbackHost } from '../config/index.js'
import { K, type Logger } from '../core/log.js'
import { error, type Route, type RouteResult } from './http.js'

export interface ApiOptions {
  routes: Route[]
  /** Bearer token required from non-loopback callers. */
  token: string
  /** Largest request body accepted. */
  maxBodyBytes: number
  log: Logger
}

/** The local HTTP API: a route table over node:http, JSON in and out. */
export async function startApi(at: ListenAddress, opts: ApiOptions): Promise<Listener> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err: Error) => {
      opts.log.error({ [K.err]: err.message }, 'api request failed')
      send(res, error(500, 'Internal service failure'))
    })
  })
  return started('http', server, at)
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: ApiOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const method = req.method ?? 'GET'
  for (const route of opts.routes) {
    const m = route.pattern.exec(url.pathname)
    if (m === null) continue
    if (route.public !== true && !isAuthorized(req.socket.remoteAddress ?? '', req.headers.authorization, opts.token)) {
      return send(res, error(401, 'Unauthorized'))
    }
    const make = route.methods[method]
    if (make === undefined) return send(res, error(405, `method ${method} not allowed on ${url.pathname}`))
    const body = await readBody(req, route.maxBodyBytes ?? opts.maxBodyBytes)
    if (body === null) return send(res, route.tooLarge?.() ?? error(413, 'The payload exceeds the maximum size allowed'))
    const params = m.slice(1).map((p) => decodeURIComponent(p))
    return send(res, await make(params)(req, url, body))
  }
  const known = isAuthorized(req.socket.remoteAddress ?? '', req.headers.authorization, opts.token)
  send(res, known ? error(404, `no route for ${method} ${url.pathname}`) : error(401, 'Unauthorized'))
}

/** Loopback callers are trusted (they share the board); anyone else needs the bearer token. */
export function isAuthorized(remoteAddress: string, authorization: string | undefined, token: string): boolean {
  if (isLoopbackHost(remoteAddress.replace(/^::ffff:/, ''))) return true
  const given = Buffer.from(/^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '')
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** Reads the body, or resolves null once it passes the size cap. */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
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

function send(res: ServerResponse, result: RouteResult): void {
  if (res.headersSent) return
  if (typeof result === 'function') return result(res)
  const [status, body] = result
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}
