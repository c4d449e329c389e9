import type { IncomingMessage, ServerResponse } from 'node:http'

/** A JSON answer, or a function that writes a streaming response itself. */
export type RouteResult = [number, unknown] | ((res: ServerResponse) => void)

export type Handler = (req: IncomingMessage, url: URL, body: Buffer) => Promise<RouteResult>

/** A route table entry: a path pattern and a handler per method. */
export interface Route {
  pattern: RegExp
  methods: Partial<Record<string, (params: string[]) => Handler>>
  /**
   * The answer when a request body passes the API's size cap; AWS's generic 413 otherwise. A route
   * whose bodies have a limit of their own (bundles) names that limit rather than the API's.
   */
  tooLarge?: () => RouteResult
  /** A body cap of the route's own, below the API's (shadow requests); the rest is not read. */
  maxBodyBytes?: number
  /**
   * Answered without the bearer token. Only for resources whose URL is itself the secret: a bundle
   * addressed by its SHA-256 digest can only be asked for by someone who was told the digest.
   */
  public?: boolean
}

export const error = (status: number, message: string): [number, unknown] => [status, { code: status, message }]
