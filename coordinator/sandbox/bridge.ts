import { Encoder } from 'cbor-x'
import { InvalidArgumentError } from '../core/errors.js'
import type { HostApi, LogLevel } from './types.js'

/**
 * The host half of the bridge: what the isolate's requests turn into. Arguments arrive as copies
 * made from values the task controls, so each is checked here even though the prelude shapes them;
 * the prelude is a convenience, this is the boundary.
 */

/** A host error as it crosses into the isolate: message and code only, never a host stack. */
export interface PlainError {
  message: string
  code?: string
}

export type Settlement = { ok: true; value: unknown } | { ok: false; error: PlainError }

type Request = (host: HostApi, args: readonly unknown[]) => Promise<unknown>

const text = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw new InvalidArgumentError(`${what} must be a string`)
  return v
}
const optionalText = (v: unknown, what: string): string | undefined => (v === undefined || v === null ? undefined : text(v, what))
const payload = (v: unknown): string | Uint8Array => {
  if (typeof v === 'string' || v instanceof Uint8Array) return v
  throw new InvalidArgumentError('publish payload must be a string, a Uint8Array or a JSON value')
}
const qos = (v: unknown): 0 | 1 => {
  if (v === 0 || v === 1) return v
  throw new InvalidArgumentError('publish qos must be 0 or 1')
}
const record = (v: unknown, what: string): Record<string, unknown> => {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v)) return v as Record<string, unknown>
  throw new InvalidArgumentError(`${what} must be an object`)
}

/** The only things a task can ask of the host; a Map so `constructor` and friends are not methods. */
const REQUESTS: ReadonlyMap<string, Request> = new Map<string, Request>([
  ['publish', (h, [topic, body, q]) => h.publish(text(topic, 'publish topic'), payload(body), qos(q))],
  ['getShadow', (h, [thing, name]) => h.getShadow(text(thing, 'thing name'), optionalText(name, 'shadow name'))],
  ['updateShadow', (h, [thing, request, name]) => h.updateShadow(text(thing, 'thing name'), record(request, 'shadow update request'), optionalText(name, 'shadow name'))],
  ['deleteShadow', (h, [thing, name]) => h.deleteShadow(text(thing, 'thing name'), optionalText(name, 'shadow name'))],
  ['listDevices', (h) => h.listDevices()],
  ['kvGet', (h, [key]) => h.kvGet(text(key, 'state key'))],
  ['kvSet', (h, [key, value]) => h.kvSet(text(key, 'state key'), value)],
  ['kvDelete', (h, [key]) => h.kvDelete(text(key, 'state key'))],
  ['kvList', (h, [prefix]) => h.kvList(text(prefix, 'state key prefix'))],
  ['invoke', (h, [task, body]) => h.invoke(text(task, 'task name'), body)],
  ['limitReached', async (h, [limit, count]) => h.limitReached?.(text(limit, 'limit'), typeof count === 'number' ? count : 0)],
])

/** Runs one request from the isolate; never rejects, the outcome is settled into the isolate. */
export async function serveRequest(host: HostApi, method: unknown, args: unknown): Promise<Settlement> {
  try {
    const request = typeof method === 'string' ? REQUESTS.get(method) : undefined
    if (request === undefined || !Array.isArray(args)) throw new InvalidArgumentError(`unknown host request ${JSON.stringify(method)}`)
    return { ok: true, value: await request(host, args) }
  } catch (e) {
    return { ok: false, error: plainError(e) }
  }
}

export function plainError(e: unknown): PlainError {
  const message = e instanceof Error ? e.message : String(e)
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined
  return typeof code === 'string' ? { message, code } : { message }
}

const LEVELS: ReadonlySet<unknown> = new Set<LogLevel>(['debug', 'info', 'warn', 'error'])
/** One log line from a task should not be able to fill a disk. */
const LOG_MESSAGE_CHARS = 8192

export function forwardLog(host: HostApi, level: unknown, message: unknown, fields: unknown): void {
  const msg = typeof message === 'string' ? message.slice(0, LOG_MESSAGE_CHARS) : String(message)
  const lvl = LEVELS.has(level) ? (level as LogLevel) : 'info'
  if (typeof fields === 'object' && fields !== null && !Array.isArray(fields)) host.log(lvl, msg, fields as Record<string, unknown>)
  else host.log(lvl, msg)
}

/**
 * Standard CBOR both ways: no cbor-x record extension, byte strings untagged, maps decoded to
 * objects, and decoded byte strings copied rather than left as views into the input.
 */
const cbor = new Encoder({ useRecords: false, tagUint8Array: false, copyBuffers: true })

export type CborOutcome = { ok: true; value: unknown } | { ok: false; message: string; code?: string }

export function cborOp(op: unknown, value: unknown): CborOutcome {
  try {
    if (op === 'encode') return { ok: true, value: cbor.encode(value) }
    if (op !== 'decode') throw new InvalidArgumentError(`unknown cbor operation ${JSON.stringify(op)}`)
    if (!(value instanceof Uint8Array)) throw new InvalidArgumentError('cbor.decode takes a Uint8Array')
    return { ok: true, value: cbor.decode(value) }
  } catch (e) {
    return { ok: false, ...plainError(e) }
  }
}
