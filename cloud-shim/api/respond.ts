/**
 * Helpers shared by the cloud shim's routes: typed errors become HTTP answers, bodies are parsed
 * and validated at the edge. Error bodies are the coordinator API's `{code: 'COORD_...', message}`
 * (a query error adds `position`, a bundle refusal `errors`).
 */
import type { IncomingMessage } from 'node:http'
import type { z } from 'zod'
import type { Route, RouteResult } from '../../coordinator/api/index.js'
import { InvalidArgumentError } from '../../coordinator/core/errors.js'

export interface RequestContext {
  params: string[]
  req: IncomingMessage
  url: URL
  body: Buffer
}

export type Action = (ctx: RequestContext) => RouteResult | Promise<RouteResult>

const STATUS: Readonly<Record<string, number>> = {
  COORD_INVALID_ARG: 400,
  COORD_REGISTRY_QUERY_INVALID: 400,
  COORD_NOT_FOUND: 404,
  COORD_CONFLICT: 409,
  COORD_DEPLOY_NOT_APPROVED: 409,
  COORD_CLOSED: 503,
  COORD_BUNDLE_TOO_LARGE: 413,
  COORD_BUNDLE_MALFORMED: 400,
  COORD_BUNDLE_MANIFEST_INVALID: 400,
  COORD_BUNDLE_SIGNATURE_INVALID: 422,
  COORD_BUNDLE_DIGEST_MISMATCH: 422,
  COORD_BUNDLE_UNSIGNED: 403,
  COORD_BUNDLE_UNTRUSTED: 403,
}

/** A route whose actions answer typed errors with their status; anything else is a 500 (logged by the server). */
export function route(pattern: RegExp, actions: Partial<Record<string, Action>>, opts: Pick<Route, 'accepts' | 'tooLarge'> = {}): Route {
  const methods: Route['methods'] = {}
  for (const [method, action] of Object.entries(actions)) {
    if (action === undefined) continue
    methods[method] = (params) => async (req, url, body) => {
      try {
        return await action({ params, req, url, body })
      } catch (err) {
        return errorResult(err)
      }
    }
  }
  return { pattern, methods, ...opts }
}

export function errorResult(err: unknown): RouteResult {
  const e = err as { code?: unknown; message?: unknown; position?: unknown; errors?: unknown }
  const status = typeof e.code === 'string' ? STATUS[e.code] : undefined
  if (status === undefined) throw err
  const extra = {
    ...(typeof e.position === 'number' ? { position: e.position } : {}),
    ...(Array.isArray(e.errors) && e.errors.length > 0 ? { errors: e.errors } : {}),
  }
  return [status, { code: e.code, message: String(e.message), ...extra }]
}

/** JSON body validated by `schema`; InvalidArgumentError naming the field otherwise. */
export function parseBody<T>(schema: z.ZodType<T>, body: Buffer): T {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new InvalidArgumentError(`request body is not valid JSON: ${(err as Error).message}`)
  }
  const parsed = schema.safeParse(json)
  if (parsed.success) return parsed.data
  throw new InvalidArgumentError(`request body: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
}

export const iso = (ms: number): string => new Date(ms).toISOString()

/** Drops keys whose value is undefined: the services' optional fields are absent, never undefined. */
export const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
