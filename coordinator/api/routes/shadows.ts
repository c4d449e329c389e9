import type { ShadowService } from '../../shadow/index.js'
import type { ShadowRef } from '../../protocol/index.js'
import { awsError, type Handler, type Route } from '../http.js'

/** AWS's SDKs send shadow documents as application/octet-stream; curl and our CLI as JSON. */
const SHADOW_BODY = ['application/json', 'application/octet-stream']

/** The AWS IoT data-plane REST paths for shadows: AWS's bodies, status codes and error shape. */
export function shadowRoutes(shadows: ShadowService): Route[] {
  const refOf = (thingName: string, url: URL): ShadowRef => {
    const name = url.searchParams.get('name')
    return name === null || name === '' ? { thingName } : { thingName, shadowName: name }
  }
  const op = (fn: (ref: ShadowRef, body: Buffer) => Promise<{ status: number; body: unknown }>) =>
    ([thing = '']: string[]): Handler => async (_req, url, body) => {
      const r = await fn(refOf(thing, url), body)
      return [r.status, r.body]
    }
  return [
    {
      pattern: /^\/things\/([^/]+)\/shadow$/,
      errorShape: 'aws',
      accepts: SHADOW_BODY,
      // The service's own request cap, so an oversized body is never buffered past it.
      maxBodyBytes: shadows.maxRequestBytes,
      tooLarge: () => {
        shadows.refusedOversizedBody()
        return awsError(413, 'The payload exceeds the maximum size allowed')
      },
      methods: {
        GET: op((ref) => shadows.get(ref)),
        POST: op((ref, body) => shadows.update(ref, body)),
        DELETE: op((ref) => shadows.delete(ref)),
      },
    },
    {
      pattern: /^\/api\/things\/shadow\/ListNamedShadowsForThing\/([^/]+)$/,
      errorShape: 'aws',
      methods: {
        GET: ([thing = '']) => async (_req, url) => {
          const raw = url.searchParams.get('pageSize') ?? '25'
          const pageSize = Number(raw)
          if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
            return awsError(400, `pageSize must be an integer from 1 to 100, got '${raw}'`)
          }
          return [200, shadows.listNamed(thing, pageSize, url.searchParams.get('nextToken') ?? undefined)]
        },
      },
    },
  ]
}
