/** The coordinator's local API, task routes (coordinator/protocol/task-api.ts), over fetch. */
import type { ApiErrorBody, TaskInfo, TaskInvokeResponse, TaskListResponse, TaskLogEntry } from '../../coordinator/protocol/index.js'
import { CliError } from './common.js'

type Body = { bytes: Uint8Array } | { json: string }

export class CoordinatorClient {
  readonly url: string
  readonly #base: URL

  constructor(url: string) {
    let base: URL
    try {
      base = new URL(url)
    } catch {
      throw new CliError(`--coordinator: "${url}" is not a URL (expected e.g. http://127.0.0.1:8087)`)
    }
    // Relative paths resolve under a base that ends in '/', so a proxy prefix (http://gw/edge/) is kept.
    if (!base.pathname.endsWith('/')) base.pathname += '/'
    this.url = url
    this.#base = base
  }

  /** `configJson` replaces the task's config overrides (validated by the coordinator against the manifest). */
  push(bundle: Uint8Array, configJson?: string): Promise<TaskInfo> {
    const path = configJson === undefined ? 'v1/tasks' : `v1/tasks?${new URLSearchParams({ config: configJson }).toString()}`
    return this.#json<TaskInfo>('POST', path, { bytes: bundle })
  }

  async list(): Promise<TaskInfo[]> {
    return (await this.#json<TaskListResponse>('GET', 'v1/tasks')).tasks
  }

  get(name: string): Promise<TaskInfo> {
    return this.#json<TaskInfo>('GET', taskPath(name))
  }

  /** The answer's TaskInfo when the coordinator sends one (stop/start), else undefined. */
  async act(method: 'DELETE' | 'POST', name: string, action?: 'stop' | 'start'): Promise<TaskInfo | undefined> {
    const res = await this.#send(method, action === undefined ? taskPath(name) : `${taskPath(name)}/${action}`)
    const text = await res.text()
    return text.trim() === '' ? undefined : (parseJson(text, res) as TaskInfo)
  }

  async invoke(name: string, payloadJson: string): Promise<unknown> {
    return (await this.#json<TaskInvokeResponse>('POST', `${taskPath(name)}/invoke`, { json: payloadJson })).result
  }

  /**
   * Yields log entries as they arrive; with `follow` the stream stays open until the caller stops.
   * A line that is not JSON is yielded as text: a log line is still worth showing.
   */
  async *logs(name: string, opts: { tail?: number; follow: boolean }): AsyncGenerator<TaskLogEntry | string> {
    const query = new URLSearchParams()
    if (opts.tail !== undefined) query.set('tail', String(opts.tail))
    if (opts.follow) query.set('follow', '1')
    const res = await this.#send('GET', `${taskPath(name)}/logs${query.size > 0 ? `?${query.toString()}` : ''}`)
    if (res.body === null) return
    for await (const line of ndjsonLines(res.body)) yield parseLogLine(line)
  }

  async #json<T>(method: string, path: string, body?: Body): Promise<T> {
    const res = await this.#send(method, path, body)
    return parseJson(await res.text(), res) as T
  }

  async #send(method: string, path: string, body?: Body): Promise<Response> {
    const url = new URL(path, this.#base)
    let res: Response
    try {
      res = await fetch(url, { method, ...requestBody(body) })
    } catch (err) {
      const cause = (err as Error).cause as { code?: string; message?: string } | undefined
      throw new CliError(`cannot reach the coordinator at ${this.url}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is it running? set --coordinator or EDGE_COORDINATOR)`)
    }
    if (!res.ok) throw await apiError(res)
    return res
  }
}

const taskPath = (name: string): string => `v1/tasks/${encodeURIComponent(name)}`

function requestBody(body: Body | undefined): RequestInit {
  if (body === undefined) return {}
  if ('bytes' in body) return { body: body.bytes, headers: { 'content-type': 'application/octet-stream' } }
  return { body: body.json, headers: { 'content-type': 'application/json' } }
}

function parseJson(text: string, res: Response): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new CliError(`the coordinator answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`)
  }
}

/** The API's {code, message}; anything else (a proxy's HTML page) is summarized. */
async function apiError(res: Response): Promise<CliError> {
  const text = await res.text()
  try {
    const body = JSON.parse(text) as Partial<ApiErrorBody>
    if (typeof body.message === 'string') return new CliError(`${body.message}${typeof body.code === 'string' ? ` (${body.code})` : ''}`)
  } catch {
    // Not JSON: described below.
  }
  return new CliError(`the coordinator answered ${res.status} ${res.statusText}${text.trim() === '' ? '' : `: ${text.trim().slice(0, 200)}`}`)
}

function parseLogLine(line: string): TaskLogEntry | string {
  try {
    const entry = JSON.parse(line) as unknown
    return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as TaskLogEntry) : line
  } catch {
    return line
  }
}

async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true })
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) if (line.trim() !== '') yield line
  }
  pending += decoder.decode()
  if (pending.trim() !== '') yield pending
}
