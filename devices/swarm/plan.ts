/**
 * From command-line options to a runnable swarm: credentials for every device, and the broker URL,
 * given directly or discovered through the coordinator's local API (`GET /v1/discovery/{thing}`).
 */
import { readFileSync } from 'node:fs'
import { discover, endpointUrl, type Discovery, type DiscoveryEndpoint } from '../sdk/index.js'
import { credentialsFor, parseTokenFile, type Credentials } from './credentials.js'
import { swarmNames, type SwarmKind, type SwarmOptions } from './swarm.js'

export interface SwarmCliOptions {
  coordinator: string
  count: number
  kind: SwarmKind
  prefix: string
  intervalMs: number
  seed: number
  tokenFile?: string
  certDir?: string
  apiTokenFile?: string
}

export interface SwarmPlan {
  options: SwarmOptions
  /** One line saying what will run, for the operator. */
  summary: string
}

export async function planSwarm(o: SwarmCliOptions): Promise<SwarmPlan> {
  const names = swarmNames(o.prefix, o.count)
  const tokens = o.tokenFile === undefined ? undefined : parseTokenFile(readFileSync(o.tokenFile, 'utf8'))
  let credentials = credentialsFor(names, { ...(tokens === undefined ? {} : { tokens }), ...(o.certDir === undefined ? {} : { certDir: o.certDir }) })
  let url = o.coordinator
  if (/^https?:/.test(o.coordinator)) {
    const found = await discover(o.coordinator, names[0] as string, o.apiTokenFile === undefined ? {} : { apiToken: readFileSync(o.apiTokenFile, 'utf8').trim() })
    const endpoint = pickEndpoint(found, o.certDir !== undefined)
    url = endpointUrl(endpoint)
    credentials = trustingDiscoveredCa(credentials, endpoint, found)
  }
  const auth = o.certDir !== undefined ? 'certificates' : tokens !== undefined ? 'tokens' : 'anonymous'
  const summary = `swarm: ${o.count} ${o.kind} device(s) ${names[0]}..${names.at(-1)} -> ${url} (${auth})`
  return { options: { url, count: o.count, kind: o.kind, prefix: o.prefix, intervalMs: o.intervalMs, seed: o.seed, credentials }, summary }
}

/** Certificates need mqtts; otherwise plain MQTT is the cheapest for a swarm, then WebSocket. */
function pickEndpoint(found: Discovery, withCertificates: boolean): DiscoveryEndpoint {
  const preference = withCertificates ? ['mqtts'] : ['mqtt', 'ws', 'mqtts']
  for (const protocol of preference) {
    const endpoint = found.endpoints.find((e) => e.protocol === protocol)
    if (endpoint !== undefined) return endpoint
  }
  throw new Error(`discovery offered no ${preference.join(' or ')} endpoint (got ${found.endpoints.map((e) => e.protocol).join(', ') || 'none'})`)
}

/** Over mqtts, devices without a CA file of their own trust the CA discovery returned. */
function trustingDiscoveredCa(credentials: (name: string) => Credentials, endpoint: DiscoveryEndpoint, found: Discovery): (name: string) => Credentials {
  const caPem = found.caPem
  if (endpoint.protocol !== 'mqtts' || caPem === null) return credentials
  return (name) => ({ ca: caPem, ...credentials(name) })
}
