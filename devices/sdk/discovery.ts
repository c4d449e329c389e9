/**
 * Finding the coordinator: `GET /v1/discovery/{thingName}` on its local HTTP API answers where the
 * broker listens and which CA signs its server certificate, like Greengrass discovery (reference
 * §3.3) without the cloud round trip.
 */
import { isValidThingName } from '../../coordinator/protocol/index.js'
import { DiscoveryError } from './errors.js'

export interface DiscoveryEndpoint {
  protocol: 'mqtt' | 'mqtts' | 'ws'
  host: string
  port: number
  /** The WebSocket path, `/mqtt`; only on ws endpoints. */
  path?: string
}

export interface Discovery {
  thingName: string
  endpoints: DiscoveryEndpoint[]
  /** The coordinator CA certificate to trust for mqtts; null when the coordinator has no CA. */
  caPem: string | null
}

export interface DiscoverOptions {
  /** The API bearer token (`<dataDir>/api-token`), needed by callers that are not on loopback. */
  apiToken?: string
  /** Default 10 000 ms. */
  timeoutMs?: number
}

const PROTOCOLS: ReadonlySet<string> = new Set(['mqtt', 'mqtts', 'ws'])

export async function discover(apiUrl: string, thingName: string, opts: DiscoverOptions = {}): Promise<Discovery> {
  if (!isValidThingName(thingName)) throw new RangeError(`thingName must be 1-128 characters of [a-zA-Z0-9:_-], got '${thingName}'`)
  const url = new URL(`v1/discovery/${encodeURIComponent(thingName)}`, apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`)
  const headers: Record<string, string> = opts.apiToken === undefined ? {} : { authorization: `Bearer ${opts.apiToken}` }
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) })
  const body: unknown = await res.json().catch(() => null)
  if (!res.ok) throw new DiscoveryError(res.status, `discovery for '${thingName}' failed with HTTP ${res.status}: ${messageOf(body)}`)
  return readDiscovery(body, res.status)
}

/** The connect URL for an endpoint; IPv6 literals are bracketed. */
export function endpointUrl(endpoint: DiscoveryEndpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host
  return `${endpoint.protocol}://${host}:${endpoint.port}${endpoint.protocol === 'ws' ? endpoint.path ?? '/mqtt' : ''}`
}

function readDiscovery(body: unknown, status: number): Discovery {
  const b = body as Partial<Discovery> | null
  const valid = b !== null && typeof b === 'object' && typeof b.thingName === 'string' && Array.isArray(b.endpoints)
    && b.endpoints.every(isEndpoint) && (b.caPem === null || typeof b.caPem === 'string')
  if (!valid) throw new DiscoveryError(status, 'discovery answered with a body that is not {thingName, endpoints, caPem}')
  return { thingName: b.thingName as string, endpoints: b.endpoints as DiscoveryEndpoint[], caPem: b.caPem as string | null }
}

function isEndpoint(e: unknown): e is DiscoveryEndpoint {
  const x = e as Partial<DiscoveryEndpoint> | null
  return x !== null && typeof x === 'object' && PROTOCOLS.has(String(x.protocol)) && typeof x.host === 'string'
    && Number.isInteger(x.port) && (x.path === undefined || typeof x.path === 'string')
}

function messageOf(body: unknown): string {
  const message = (body as { message?: unknown } | null)?.message
  return typeof message === 'string' ? message : 'no message'
}
