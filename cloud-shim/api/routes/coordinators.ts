import { z } from 'zod'
import type { Route } from '../../../coordinator/api/index.js'
import type { JoinDocument, ProvisionRequest } from '../../identity/index.js'
import { defined, parseBody, route } from '../respond.js'

const request = z.object({
  name: z.string(),
  attributes: z.record(z.string(), z.string()).optional(),
  tags: z.array(z.string()).optional(),
  mqttUrl: z.string().url().optional(),
  httpUrl: z.string().url().optional(),
  token: z.boolean().optional(),
}).strict()

/** URLs default to what the daemon advertises. */
export type Provision = (req: Omit<ProvisionRequest, 'mqttUrl' | 'httpUrl'> & Partial<Pick<ProvisionRequest, 'mqttUrl' | 'httpUrl'>>) => Promise<JoinDocument>

/**
 * `POST /v1/coordinators`: registers a coordinator and answers its join document, private key
 * included (shown once, never stored). The same as `edge-cloud coordinators add`, for remote operators.
 */
export function coordinatorRoutes(provision: Provision): Route[] {
  return [
    route(/^\/v1\/coordinators$/, {
      POST: async ({ body }) => {
        return [201, await provision(defined(parseBody(request, body)))]
      },
    }),
  ]
}
