import type { Client } from 'aedes'

/**
 * The maximum MQTT packet size, enforced inside the parser aedes gives each connection
 * (mqtt-packet's). That parser reads the fixed header and the remaining length first
 * (`_parseLength`) and only then collects the payload, up to 256 MB of it, in memory. Checking the
 * announced length right there refuses an oversized packet before any of its payload is kept: the
 * connection is closed with what has arrived so far (one socket read), whatever the transport.
 */

/** The parts of mqtt-packet's Parser this relies on (mqtt-packet 9, under aedes 1.2). */
interface ParserInternals {
  packet: { cmd?: string; length: number }
  _parseLength(): boolean
  _emitError(err: Error): void
}

export class PacketTooLargeError extends Error {
  constructor(readonly announcedBytes: number, readonly maxBytes: number, readonly cmd: string) {
    super(`${cmd} packet of ${announcedBytes} bytes exceeds broker.maxPacketBytes (${maxBytes})`)
  }
}

/** Fixed header (1 byte), the remaining length's own bytes (1-4), then the remaining length. */
export function packetBytes(remainingLength: number): number {
  const lengthBytes = remainingLength < 128 ? 1 : remainingLength < 16_384 ? 2 : remainingLength < 2_097_152 ? 3 : 4
  return 1 + lengthBytes + remainingLength
}

/**
 * Makes `client`'s parser fail on a packet longer than `maxBytes` (whole packet, header included).
 * `onRefused` runs before the parser reports the error, which makes aedes close the connection.
 * Returns false when the parser is not the one this knows how to limit (then nothing is changed,
 * and the caller must refuse the connection rather than serve it unbounded).
 */
export function limitPacketSize(client: Client, maxBytes: number, onRefused: (err: PacketTooLargeError) => void): boolean {
  const parser = (client as unknown as { _parser?: Partial<ParserInternals> })._parser
  if (parser === undefined || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') return false
  const parseLength = parser._parseLength
  const limited = parser as ParserInternals
  limited._parseLength = function limitedParseLength(this: ParserInternals): boolean {
    if (!parseLength.call(this)) return false
    const bytes = packetBytes(this.packet.length)
    if (bytes <= maxBytes) return true
    const err = new PacketTooLargeError(bytes, maxBytes, this.packet.cmd ?? 'unknown')
    onRefused(err)
    this._emitError(err)
    return false
  }
  return true
}
