/** Where the cloud shim keeps things under its data directory, and the small files it creates. */
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { InvalidArgumentError } from '../../coordinator/core/errors.js'
import type { Logger } from '../../coordinator/core/log.js'
import type { ListenAddress } from '../../coordinator/broker/index.js'
import { describeHolder } from '../../coordinator/store/index.js'
import { caFiles, checkCa, defaultServerHosts, initCa, readCa, type KeyPairPem } from '../../coordinator/pki/index.js'
import { createWebGuard, serverNames, type WebGuard } from '../../coordinator/core/web.js'
import { withoutCredentials } from '../bus/index.js'
import type { CloudConfig } from '../config/index.js'

export const cloudDatabaseFile = (dataDir: string): string => join(dataDir, 'cloud.db')
export const brokerDatabaseFile = (dataDir: string): string => join(dataDir, 'broker.db')
export const endpointsFile = (dataDir: string): string => join(dataDir, 'endpoints.json')
export const apiTokenFile = (dataDir: string): string => join(dataDir, 'api-token')
export const bundlesDir = (dataDir: string): string => join(dataDir, 'bundles')

export type CloudEndpoints = Partial<Record<'mqtt' | 'mqtts' | 'http', ListenAddress>>

/** `<dataDir>/endpoints.json` while the daemon runs, so the CLI and tools find it. */
export interface CloudEndpointsFile {
  pid: number
  endpoints: CloudEndpoints
  /** The external broker the daemon is attached to (credentials removed), when not embedded. */
  broker?: string
  /** URLs put in join files. */
  advertised: { mqttUrl: string | null; httpUrl: string | null }
}

export function readEndpointsFile(dataDir: string): CloudEndpointsFile | undefined {
  const file = endpointsFile(dataDir)
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as CloudEndpointsFile) : undefined
}

/** "pid 1234 (mqtt 127.0.0.1:1884, http 127.0.0.1:8090)": the shim holding a data dir, from its endpoints file. */
export function describeRunning(dataDir: string): string {
  try {
    const file = readEndpointsFile(dataDir)
    if (file === undefined) return 'another cloud shim (it has not written its endpoints yet)'
    return describeHolder(file.pid, file.endpoints)
  } catch {
    return 'another cloud shim (its endpoints file does not parse)'
  }
}

/** The cloud shim's own CA (`<dataDir>/pki`), created with a server certificate on first use. */
export async function ensureCa(config: CloudConfig, log: Logger): Promise<KeyPairPem> {
  const files = caFiles(config.dataDir)
  if (!checkCa(files) || !existsSync(files.serverCert)) {
    const hosts = defaultServerHosts([config.listeners.mqtts?.host ?? '', ...config.auth.serverCertHosts].filter(Boolean))
    await initCa(files, hosts)
    log.info({ dir: files.dir, hosts }, 'created the cloud shim CA and server certificate')
  }
  return readCa(files)
}

const hostFor = (bound: string): string => {
  const host = bound === '0.0.0.0' || bound === '::' ? hostname() : bound
  return host.includes(':') ? `[${host}]` : host
}

/**
 * The URLs a coordinator's join file names: the configured ones, else the listeners' addresses
 * (a wildcard bind is advertised under this host's name), else the external broker's URL.
 */
export function advertisedUrls(config: CloudConfig, endpoints: CloudEndpoints): { mqttUrl: string | null; httpUrl: string | null } {
  const { mqtts, http } = endpoints
  const external = config.broker === null ? null : withoutCredentials(config.broker.url)
  return {
    mqttUrl: config.advertise.mqttUrl ?? (mqtts === undefined ? external : `mqtts://${hostFor(mqtts.host)}:${mqtts.port}`),
    httpUrl: config.advertise.httpUrl ?? (http === undefined ? null : `http://${hostFor(http.host)}:${http.port}`),
  }
}

export function requireUrl(url: string | null, what: 'MQTT' | 'HTTP', flag: string): string {
  if (url !== null) return url
  throw new InvalidArgumentError(`cannot tell which ${what} URL coordinators should use: set advertise.${what === 'MQTT' ? 'mqttUrl' : 'httpUrl'} in the config or pass ${flag}`)
}

/**
 * The names the HTTP API answers to: localhost and IP literals always, this machine's name, the
 * name bound, the server certificate's names, the host of `advertise.httpUrl`, and `web.allowedHosts`.
 */
export function cloudWebGuard(config: CloudConfig): WebGuard {
  const { listeners, auth, advertise, web } = config
  const advertised = advertise.httpUrl === null ? [] : [new URL(advertise.httpUrl).hostname]
  return createWebGuard({
    hosts: [...serverNames(), ...(listeners.http === null ? [] : [listeners.http.host]), ...auth.serverCertHosts, ...advertised, ...web.allowedHosts],
    origins: web.allowedOrigins,
  })
}
