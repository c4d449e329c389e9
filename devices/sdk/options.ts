/**
 * Device connection options: defaults, validation (failing fast and naming the option) and the
 * translation into MQTT.js options. Everything a device must not get wrong with the coordinator is
 * fixed here rather than left to the caller: client id = thing name (the Greengrass identity rule,
 * reference §3.3/§4.4), username = thing name when a token is the password, MQTT 3.1.1.
 */
import { readFileSync } from 'node:fs'
import type { IClientOptions } from 'mqtt'
import { isValidThingName } from '../../coordinator/protocol/index.js'
import { DEFAULT_BACKOFF, validateBackoff, type BackoffPolicy } from './backoff.js'
import { DEFAULT_OFFLINE_BUFFER_LIMITS, type OfflineBufferLimits } from './offline-buffer.js'

export interface DeviceOptions {
  /** `mqtt://`, `mqtts://` (mutual TLS with cert/key), `ws://` or `wss://` (path `/mqtt`). */
  url: string
  /** Also the MQTT client id: the coordinator identifies devices by it. */
  thingName: string
  /** Client certificate, private key and CA to trust: PEM text, or a path to a PEM file. */
  cert?: string
  key?: string
  ca?: string
  /** A token issued by `devices add --token`, sent as the MQTT password. */
  token?: string
  /**
   * Default false: a persistent session, so the broker keeps the subscriptions and queues QoS 1
   * deltas while the device is offline and delivers them on reconnect.
   */
  clean?: boolean
  /** MQTT keepalive in seconds; default 60. */
  keepalive?: number
  /** Reconnect backoff after a lost connection, or false for no reconnects. */
  reconnect?: Partial<BackoffPolicy> | false
  /** How long to wait for CONNACK; default 10 000 ms. */
  connectTimeoutMs?: number
  /** How long a shadow request waits for its reply (connection wait included); default 10 000 ms. */
  requestTimeoutMs?: number
  /** Caps of the in-memory telemetry buffer used while offline. */
  offlineBuffer?: Partial<OfflineBufferLimits>
}

export interface DeviceSettings {
  url: string
  thingName: string
  mqtt: IClientOptions
  backoff: BackoffPolicy | null
  requestTimeoutMs: number
  offlineBuffer: OfflineBufferLimits
}

const SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:'])

export function resolveDeviceOptions(o: DeviceOptions): DeviceSettings {
  checkUrl(o.url)
  if (!isValidThingName(o.thingName)) throw new RangeError(`thingName must be 1-128 characters of [a-zA-Z0-9:_-], got '${o.thingName}'`)
  if ((o.cert === undefined) !== (o.key === undefined)) throw new RangeError('cert and key must be given together')
  const backoff = o.reconnect === false ? null : validateBackoff({ ...DEFAULT_BACKOFF, ...o.reconnect })
  const requestTimeoutMs = positive('requestTimeoutMs', o.requestTimeoutMs ?? 10_000)
  const offlineBuffer = { ...DEFAULT_OFFLINE_BUFFER_LIMITS, ...o.offlineBuffer }
  return { url: o.url, thingName: o.thingName, mqtt: mqttOptions(o, backoff), backoff, requestTimeoutMs, offlineBuffer }
}

function mqttOptions(o: DeviceOptions, backoff: BackoffPolicy | null): IClientOptions {
  return {
    clientId: o.thingName,
    protocolVersion: 4,
    clean: o.clean ?? false,
    keepalive: nonNegative('keepalive', o.keepalive ?? 60),
    connectTimeout: positive('connectTimeoutMs', o.connectTimeoutMs ?? 10_000),
    // The client drives the period itself (see DeviceClient); 0 turns reconnecting off.
    reconnectPeriod: backoff?.initialDelayMs ?? 0,
    // A refused CONNACK (device removed, token rotated) may be fixed by the operator later.
    reconnectOnConnackError: true,
    // Resubscribing is done by the DeviceClient, and only when the broker lost the session.
    resubscribe: false,
    rejectUnauthorized: true,
    ...credentials(o),
  }
}

function credentials(o: DeviceOptions): IClientOptions {
  const out: IClientOptions = {}
  if (o.token !== undefined) {
    out.username = o.thingName
    out.password = o.token
  }
  if (o.cert !== undefined) out.cert = readPem(o.cert, 'cert')
  if (o.key !== undefined) out.key = readPem(o.key, 'key')
  if (o.ca !== undefined) out.ca = readPem(o.ca, 'ca')
  return out
}

/** PEM text is used as is; anything else is a file path, read now so a typo fails at once. */
export function readPem(value: string, option: string): string {
  if (value.includes('-----BEGIN ')) return value
  try {
    return readFileSync(value, 'utf8')
  } catch (err) {
    throw new Error(`${option}: cannot read PEM file '${value}': ${(err as Error).message}`, { cause: err })
  }
}

function checkUrl(url: string): void {
  let scheme: string
  try {
    scheme = new URL(url).protocol
  } catch {
    throw new RangeError(`url must be an absolute URL such as mqtt://127.0.0.1:1883, got '${url}'`)
  }
  if (!SCHEMES.has(scheme)) throw new RangeError(`url must start with mqtt://, mqtts://, ws:// or wss://, got '${url}'`)
}

function positive(option: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${option} must be a positive number, got ${value}`)
  return value
}

function nonNegative(option: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new RangeError(`${option} must be a non-negative integer, got ${value}`)
  return value
}
