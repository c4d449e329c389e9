/**
 * Telemetry payload encodings. CBOR is there for constrained links (it is about half the size of
 * JSON for numeric readings); JSON for everything that wants to read payloads by eye.
 */
import { Encoder } from 'cbor-x'
import type { QoS } from './types.js'

export type TelemetryEncoding = 'json' | 'cbor'

export interface TelemetryOptions {
  /** Default 'json'. */
  encoding?: TelemetryEncoding
  /** Default `things/{thingName}/telemetry`, inside the topic space the default policy grants. */
  topic?: string
  /** Default 0, the usual choice for periodic readings; use 1 for readings that must arrive. */
  qos?: QoS
}

/**
 * Records (cbor-x's default for repeated object shapes) are a cbor-x extension other decoders do
 * not understand, so plain CBOR maps are written.
 */
const cbor = new Encoder({ useRecords: false })

export function telemetryTopic(thingName: string): string {
  return `things/${thingName}/telemetry`
}

export function encodeTelemetry(data: unknown, encoding: TelemetryEncoding): Buffer {
  if (data === undefined) throw new TypeError('telemetry data must not be undefined')
  if (encoding === 'cbor') return cbor.encode(data)
  if (encoding === 'json') return Buffer.from(JSON.stringify(data), 'utf8')
  throw new RangeError(`telemetry encoding must be 'json' or 'cbor', got '${String(encoding)}'`)
}
