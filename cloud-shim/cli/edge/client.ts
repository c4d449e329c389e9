import type { Command } from 'commander'

export const DEFAULT_CLOUD_URL = 'http://127.0.0.1:8090'

/** The options every `edge` command shares (defined on the program, accepted anywhere). */
export interface GlobalOptions {
  cloud?: string
  token?: string
  json?: boolean
}

/** A non-2xx answer; the message is the server's, `code` its `COORD_...` error code. */
export class ApiError extends Error {
  readonly code: string | undefined
  constructor(readonly status: number, message: string, readonly body: unknown) {
    super(message)
    const code = (body as { code?: unknown } | null)?.code
    this.code = typeof code === 'string' ? code : undefined
  }
}

/** JSON over HTTP to the cloud shim's API. */
export class CloudClient {
  readonly baseUrl: string
  readonly #token: string | undefined

  constructor(baseUrl: string, token: string | undefined) {
    this.baseUrl = baseUrl
    this.#token = token
  }

  url(path: string): URL {
    return new URL(path, this.baseUrl)
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }), ...extra }
  }

  /** `body` is sent as JSON; a string is sent as it is (already JSON). */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method, headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }) }
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body)
    let res: Response
    try {
      res = await fetch(this.url(path), init)
    } catch (err) {
      throw new Error(`cannot reach the cloud shim at ${this.baseUrl}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
    }
    const parsed = parseJson(await res.text())
    if (!res.ok) throw new ApiError(res.status, messageOf(parsed) ?? `${res.status} ${res.statusText}`, parsed)
    return parsed as T
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

export function messageOf(body: unknown): string | undefined {
  const m = (body as { message?: unknown } | null)?.message
  return typeof m === 'string' ? m : undefined
}

export interface EdgeContext {
  client: CloudClient
  json: boolean
}

/** The client and output mode for the command being run: --cloud, else $EDGE_CLOUD, else loopback. */
export function contextOf(cmd: Command): EdgeContext {
  const o = cmd.optsWithGlobals<GlobalOptions>()
  const base = o.cloud ?? process.env['EDGE_CLOUD'] ?? DEFAULT_CLOUD_URL
  return { client: new CloudClient(base, o.token ?? process.env['EDGE_CLOUD_TOKEN']), json: o.json === true }
}

export const path = (strings: TemplateStringsArray, ...names: string[]): string =>
  strings.reduce((out, s, i) => out + s + (i < names.length ? encodeURIComponent(names[i] ?? '') : ''), '')
