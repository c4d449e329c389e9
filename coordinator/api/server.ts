import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { started, type ListenAddress, type Listener } from '../broker/index.js'
import { isLoopbackHost } from '../config/index.js'
import { K, type Logger } from '../core/log.js'
import { refusalCounter, type RefusalCounter, type WebGuard } from '../core/web.js'
import type { ApiErrorBody } from '../protocol/index.js'
import { awsError, error, JSON_BODY, type Route, type RouteResult } from './http.js'

export interface ApiOptions {
  routes: Route[]
  /** Bearer token required from non-loopback callers. */
  token: string
  /** Largest request body accepted. */
  maxBodyBytes: number
  /** Which Host names and Origins browsers may use (coordinator/core/web.ts). */
  web: WebGuard
  log: Logger
}

/** Methods that change nothing: no Origin or content-type check, as browsers send them freely anyway. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The local HTTP API: a route table over node:http, JSON in and out. */
export async function startApi(at: ListenAddress, opts: ApiOptions): Promise<Listener> {
  const refusals = refusalCounter(opts.log, 'api request refused')
  const server = createServer((req, res) => {
    let route: Route | undefined
    handle(req, res, opts, refusals, (r) => (route = r)).catch((err: Error) => {
      opts.log.error({ [K.err]: err.message }, 'api request failed')
      send(res, route?.errorShape === 'aws' ? awsError(500, 'Internal service failure') : error(500, 'COORD_INTERNAL', 'internal error (the daemon log has the details)'))
    })
  })
  return started('http', server, at)
}

type Refuse = (status: number, code: ApiErrorBody['code'], message: string, logged?: Record<string, unknown>) => void

async function handle(req: IncomingMessage, res: ServerResponse, opts: ApiOptions, refusals: RefusalCounter, matched: (r: Route) => void): Promise<void> {
  const method = req.method ?? 'GET'
  let url: URL
  try {
    url = new URL(req.url ?? '/', 'http://localhost')
  } catch {
    return send(res, error(400, 'COORD_INVALID_ARG', 'the request target is not a valid URL'))
  }
  let route: Route | undefined
  let m: RegExpExecArray | null = null
  for (const r of opts.routes) {
    m = r.pattern.exec(url.pathname)
    if (m !== null) {
      route = r
      break
    }
  }
  if (route !== undefined) matched(route)
  const refuse: Refuse = (status, code, message, logged) => {
    if (logged !== undefined) refusals.count(code, { method, path: url.pathname, ...logged })
    send(res, route?.errorShape === 'aws' ? awsError(status, message) : error(status, code, message))
  }
  // Before anything else: under a rebound name, even a 401 or 404 tells a page something.
  const host = req.headers.host
  if (!opts.web.hostAllowed(host)) {
    return refuse(421, 'COORD_API_HOST_REFUSED', `host '${clip(host ?? '')}' is not a name this daemon serves (add it to web.allowedHosts)`, { host: clip(host ?? '') })
  }
  const authorized = isAuthorized(req.socket.remoteAddress ?? '', req.headers.authorization, opts.token)
  if (route === undefined || m === null) {
    return authorized ? refuse(404, 'COORD_API_NO_ROUTE', `no route for ${method} ${url.pathname}`) : refuse(401, 'COORD_API_UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token> from <dataDir>/api-token)')
  }
  if (route.public !== true && !authorized) return refuse(401, 'COORD_API_UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token> from <dataDir>/api-token)')
  const make = route.methods[method]
  if (make === undefined) return refuse(405, 'COORD_API_METHOD_NOT_ALLOWED', `method ${method} not allowed on ${url.pathname}`)
  if (!SAFE_METHODS.has(method)) {
    const origin = req.headers.origin
    if (!opts.web.originAllowed(origin, host)) {
      return refuse(403, 'COORD_API_ORIGIN_REFUSED', `requests from origin '${clip(origin ?? '')}' may not change anything here (add it to web.allowedOrigins)`, { origin: clip(origin ?? '') })
    }
    const accepts = route.accepts ?? JSON_BODY
    const type = mediaType(req.headers['content-type'])
    if (type === undefined ? hasBody(req) : !accepts.includes(type)) {
      return refuse(415, 'COORD_API_UNSUPPORTED_MEDIA_TYPE', `${method} ${url.pathname} needs content-type ${accepts.join(' or ')}, got ${type === undefined ? 'none' : `'${clip(type)}'`}`, { contentType: clip(type ?? '') })
    }
  }
  let params: string[]
  try {
    params = m.slice(1).map((p) => decodeURIComponent(p))
  } catch {
    return refuse(400, 'COORD_INVALID_ARG', `the path ${clip(url.pathname)} has a malformed percent-encoding`)
  }
  const maxBodyBytes = route.maxBodyBytes ?? opts.maxBodyBytes
  const body = await readBody(req, maxBodyBytes)
  if (body === null) return send(res, route.tooLarge?.() ?? (route.errorShape === 'aws' ? awsError(413, 'The payload exceeds the maximum size allowed') : error(413, 'COORD_API_PAYLOAD_TOO_LARGE', `the request body is larger than ${maxBodyBytes} bytes`)))
  return send(res, await make(params)(req, url, body))
}

/** Loopback callers are trusted (they share the board); anyone else needs the bearer token. */
export function isAuthorized(remoteAddress: string, authorization: string | undefined, token: string): boolean {
  if (isLoopbackHost(remoteAddress.replace(/^::ffff:/, ''))) return true
  // An empty token would match an empty header; ensureApiToken never yields one, this is the backstop.
  if (token === '') return false
  const given = Buffer.from(/^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '')
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** `application/json; charset=utf-8` -> `application/json`; undefined when the header is absent. */
function mediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  return header.split(';')[0]?.trim().toLowerCase() ?? ''
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? '0') > 0
}

const clip = (s: string): string => (s.length > 200 ? `${s.slice(0, 200)}...` : s)

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
