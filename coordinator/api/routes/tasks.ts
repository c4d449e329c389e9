import type { ServerResponse } from 'node:http'
import { CoordinatorError } from '../../core/errors.js'
import type { TaskService } from '../../tasks/index.js'
import type { Handler, Route, RouteResult } from '../http.js'

/** A bundle upload is the bundle file itself. */
const BUNDLE_BODY = ['application/octet-stream']

/** HTTP status for each error code the task service, bundles and sandboxes raise. */
const STATUS: Record<string, number> = {
  COORD_TASK_NOT_FOUND: 404,
  COORD_TASK_QUEUE_FULL: 429,
  COORD_TASK_STOPPED: 409,
  COORD_TASK_BROKEN: 409,
  COORD_TASK_NOT_INVOKABLE: 409,
  COORD_TASK_CONFIG_INVALID: 400,
  COORD_TASK_MANIFEST_INVALID: 400,
  COORD_TASK_PAYLOAD_TOO_LARGE: 413,
  COORD_TASK_LIMIT_REACHED: 409,
  COORD_TASK_PERMISSION_DENIED: 403,
  COORD_BUNDLE_TOO_LARGE: 413,
  COORD_BUNDLE_MALFORMED: 400,
  COORD_BUNDLE_MANIFEST_INVALID: 400,
  COORD_BUNDLE_SIGNATURE_INVALID: 400,
  COORD_BUNDLE_DIGEST_MISMATCH: 400,
  COORD_BUNDLE_UNSIGNED: 403,
  COORD_BUNDLE_UNTRUSTED: 403,
  COORD_SANDBOX_LOAD: 422,
  COORD_SANDBOX_TIMEOUT: 504,
  COORD_SANDBOX_CPU_LIMIT: 500,
  COORD_TASK_LIMIT: 413,
  COORD_SANDBOX_MEMORY: 500,
  COORD_SANDBOX_THREW: 500,
  COORD_SANDBOX_RESULT: 500,
  COORD_SANDBOX_DISPOSED: 503,
  COORD_CLOSED: 503,
  COORD_INVALID_ARG: 400,
}

/** Task resources as coordinator/protocol/task-api.ts describes them; errors are { code, message }. */
export function taskRoutes(tasks: TaskService): Route[] {
  const name = (params: string[]): string => params[0] ?? ''
  return [
    {
      pattern: /^\/v1\/tasks$/,
      methods: {
        GET: () => async () => [200, { tasks: tasks.list() }],
        POST: () => guarded(async (_req, url, body) => install(tasks, url, body)),
      },
      accepts: BUNDLE_BODY,
      // The API stops reading a body at its cap, which is the bundle limit once that passes 128 KiB.
      tooLarge: () => failure('COORD_BUNDLE_TOO_LARGE', `bundle is larger than the limit of ${tasks.maxBundleBytes} bytes (tasks.maxBundleBytes)`),
    },
    {
      pattern: /^\/v1\/tasks\/([^/]+)$/,
      methods: {
        GET: (p) => guarded(async () => {
          const info = tasks.get(name(p))
          return info === undefined ? failure('COORD_TASK_NOT_FOUND', `task "${name(p)}" is not installed`) : [200, info]
        }),
        DELETE: (p) => guarded(async () => {
          await tasks.remove(name(p))
          return [200, { removed: name(p) }]
        }),
      },
    },
    { pattern: /^\/v1\/tasks\/([^/]+)\/stop$/, methods: { POST: (p) => guarded(async () => [200, await tasks.stop(name(p))]) } },
    { pattern: /^\/v1\/tasks\/([^/]+)\/start$/, methods: { POST: (p) => guarded(async () => [200, await tasks.startTask(name(p))]) } },
    { pattern: /^\/v1\/tasks\/([^/]+)\/invoke$/, methods: { POST: (p) => guarded(async (_req, _url, body) => invoke(tasks, name(p), body)) } },
    { pattern: /^\/v1\/tasks\/([^/]+)\/logs$/, methods: { GET: (p) => guarded(async (req, url) => logs(tasks, name(p), url, req)) } },
  ]
}

/** `?config=JSON` sets the task's config overrides; without it an upgrade keeps the previous ones. */
async function install(tasks: TaskService, url: URL, body: Buffer): Promise<RouteResult> {
  const raw = url.searchParams.get('config')
  if (raw === null) return [201, await tasks.install(body)]
  let config: unknown
  try {
    config = JSON.parse(raw)
  } catch (err) {
    return failure('COORD_INVALID_ARG', `config is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return failure('COORD_INVALID_ARG', 'config must be a JSON object')
  return [201, await tasks.install(body, { config })]
}

async function invoke(tasks: TaskService, name: string, body: Buffer): Promise<RouteResult> {
  let payload: unknown = null
  if (body.length > 0) {
    try {
      payload = JSON.parse(body.toString('utf8'))
    } catch (err) {
      return failure('COORD_INVALID_ARG', `invoke payload is not valid JSON: ${(err as Error).message}`)
    }
  }
  return [200, { result: await tasks.invoke(name, payload, 'api') }]
}

/** NDJSON: the last `tail` entries, then (with follow=1) every new one until the client goes away. */
function logs(tasks: TaskService, name: string, url: URL, req: import('node:http').IncomingMessage): RouteResult {
  const tail = Number(url.searchParams.get('tail') ?? '100')
  if (!Number.isInteger(tail) || tail < 0 || tail > 10_000) return failure('COORD_INVALID_ARG', `tail must be an integer from 0 to 10000, got '${url.searchParams.get('tail')}'`)
  const backlog = tasks.logs(name, tail)
  const follow = url.searchParams.get('follow') === '1'
  return (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    for (const entry of backlog) res.write(`${JSON.stringify(entry)}\n`)
    if (!follow) return void res.end()
    const stop = tasks.followLogs(name, (entry) => res.write(`${JSON.stringify(entry)}\n`))
    req.on('close', stop)
  }
}

function guarded(handler: Handler): Handler {
  return async (req, url, body) => {
    try {
      return await handler(req, url, body)
    } catch (err) {
      if (!(err instanceof CoordinatorError)) throw err
      return failure(err.code, err.message)
    }
  }
}

function failure(code: string, message: string): RouteResult {
  return [STATUS[code] ?? 500, { code, message }]
}
