import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ApiErrorBody } from '../protocol/index.js'

/** A JSON answer, or a function that writes a streaming response itself. */
export type RouteResult = [number, unknown] | ((res: ServerResponse) => void)

export type Handler = (req: IncomingMessage, url: URL, body: Buffer) => Promise<RouteResult>

/** Content types a write may carry when a route does not say: JSON only. */
export const JSON_BODY: readonly string[] = ['application/json']

/** A route table entry: a path pattern and a handler per method. */
export interface Route {
  pattern: RegExp
  methods: Partial<Record<string, (params: string[]) => Handler>>
  /**
   * The answer when a request body passes the API's size cap; the API's generic 413 otherwise. A
   * route whose bodies have a limit of their own (bundles) names that limit rather than the API's.
   */
  tooLarge?: () => RouteResult
  /** A body cap of the route's own, below the API's (shadow requests); the rest is not read. */
  maxBodyBytes?: number
  /**
   * Answered without the bearer token. Only for resources whose URL is itself the secret: a bundle
   * addressed by its SHA-256 digest can only be asked for by someone who was told the digest.
   */
  public?: boolean
  /**
   * Media types a POST/PUT/PATCH may carry (JSON_BODY by default). None of them may be one a web
   * page can send without a CORS preflight (text/plain, forms), which is what stops CSRF.
   */
  accepts?: readonly string[]
  /**
   * 'aws': the AWS IoT data-plane routes, whose every error (the server's own refusals included)
   * keeps AWS's `{code: <status>, message}` so AWS clients parse one shape there.
   */
  errorShape?: 'aws'
}

export const error = (status: number, code: ApiErrorBody['code'], message: string, extra: Record<string, unknown> = {}): [number, unknown] =>
  [status, { code, message, ...extra }]

/** AWS IoT's shadow error document, for the AWS-shaped routes. */
export const awsError = (status: number, message: string): [number, unknown] => [status, { code: status, message }]
