/**
 * Bundle downloads by digest over HTTP, resumable: bytes go to `<tmpDir>/<digest>.part` as they
 * arrive, and the next attempt (also after a restart) asks for the rest with `Range: bytes=N-`
 * and `If-Range: "<digest>"`, so a gateway on a bad link never fetches the same byte twice.
 */
import { createWriteStream, mkdirSync } from 'node:fs'
import { readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream } from 'node:stream/web'

export interface FetchOptions {
  /** `${baseUrl}/${digest}` is the file. */
  baseUrl: string
  digest: string
  tmpDir: string
  maxBytes: number
  attempts: number
  /** Stops waiting between attempts and cuts a transfer (close, supersede). */
  signal: AbortSignal
  /** Per attempt, so a stalled transfer does not hold the deployment forever. */
  attemptTimeoutMs?: number
  /** Before attempt n (1-based, n >= 2). */
  delayMs?: (attempt: number) => number
}

/** A refusal that retrying cannot fix (404, too large). */
export class FetchError extends Error {
  constructor(message: string, readonly permanent: boolean) {
    super(message)
  }
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 120_000
const defaultDelay = (attempt: number): number => Math.min(30_000, 1000 * 2 ** (attempt - 2))

export const partFile = (tmpDir: string, digest: string): string => join(tmpDir, `${digest}.part`)

/** The whole file's bytes once complete; the caller verifies them and then calls `discard`. */
export async function fetchBundle(o: FetchOptions): Promise<Uint8Array> {
  mkdirSync(o.tmpDir, { recursive: true })
  let last: Error = new Error('no attempt made')
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    if (attempt > 1) await sleep((o.delayMs ?? defaultDelay)(attempt), o.signal)
    o.signal.throwIfAborted()
    try {
      await transfer(o)
      return await readFile(partFile(o.tmpDir, o.digest))
    } catch (err) {
      if (o.signal.aborted || (err instanceof FetchError && err.permanent)) throw err
      last = err as Error
    }
  }
  throw new FetchError(`download of ${o.digest.slice(0, 12)} failed after ${o.attempts} attempts: ${last.message}`, false)
}

export const discardPart = (tmpDir: string, digest: string): Promise<void> => rm(partFile(tmpDir, digest), { force: true })

async function transfer(o: FetchOptions): Promise<void> {
  const file = partFile(o.tmpDir, o.digest)
  const have = await sizeOf(file)
  const signal = AbortSignal.any([o.signal, AbortSignal.timeout(o.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS)])
  const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-`, 'if-range': `"${o.digest}"` } : {}
  const res = await fetch(`${o.baseUrl.replace(/\/+$/, '')}/${o.digest}`, { headers, signal }).catch((err: Error) => {
    throw new Error(`cannot reach ${o.baseUrl}: ${(err.cause as Error | undefined)?.message ?? err.message}`)
  })
  if (res.status === 416) {
    // What we hold is no prefix of this file (or all of it, oddly sized): start over.
    await rm(file, { force: true })
    throw new Error('the server refused the resume range; starting over')
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel()
    throw new FetchError(`GET ${o.digest.slice(0, 12)}: HTTP ${res.status}`, res.status === 404 || res.status === 403)
  }
  const append = res.status === 206
  const total = (append ? have : 0) + Number(res.headers.get('content-length') ?? 0)
  if (total > o.maxBytes) {
    await res.body?.cancel()
    throw new FetchError(`bundle ${o.digest.slice(0, 12)} is ${total} bytes, more than the limit of ${o.maxBytes}`, true)
  }
  if (res.body === null) throw new Error('empty response body')
  await pipeline(Readable.fromWeb(res.body as ReadableStream<Uint8Array>), createWriteStream(file, { flags: append ? 'a' : 'w' }), { signal })
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size
  } catch {
    return 0
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    }, { once: true })
  })
}
