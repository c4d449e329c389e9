import { z } from 'zod'
import type { Route } from '../../../coordinator/api/index.js'
import { InvalidArgumentError, NotFoundError } from '../../../coordinator/core/errors.js'
import type { Registry, Thing, ThingFilter } from '../../registry/index.js'
import { defined, iso, parseBody, route } from '../respond.js'

const kind = z.enum(['coordinator', 'device'])
const thingFields = {
  kind,
  attributes: z.record(z.string(), z.string()).optional(),
  tags: z.array(z.string()).optional(),
  coordinator: z.string().nullable().optional(),
}
const newThing = z.object({ name: z.string(), ...thingFields }).strict()
const wholeThing = z.object(thingFields).strict()
const patch = z.object({
  attributes: z.record(z.string(), z.string().nullable()).optional(),
  addTags: z.array(z.string()).optional(),
  removeTags: z.array(z.string()).optional(),
  coordinator: z.string().nullable().optional(),
}).strict()

/** The API's view of a thing: timestamps as ISO 8601. */
export const thingView = (t: Thing): Record<string, unknown> => ({ ...t, createdAt: iso(t.createdAt), updatedAt: iso(t.updatedAt) })

function filterFrom(url: URL): ThingFilter {
  const k = url.searchParams.get('kind')
  if (k !== null && k !== 'coordinator' && k !== 'device') throw new InvalidArgumentError(`kind must be "coordinator" or "device", got ${JSON.stringify(k)}`)
  const coordinator = url.searchParams.get('coordinator')
  const query = url.searchParams.get('query')
  return { ...(k === null ? {} : { kind: k }), ...(coordinator === null ? {} : { coordinator }), ...(query === null ? {} : { query }) }
}

/** Things: list (filtered, or by a group query: the preview of a dynamic group), create, read, replace, patch, remove. */
export function thingRoutes(registry: Registry): Route[] {
  const mustGet = (name: string): Thing => {
    const t = registry.getThing(name)
    if (t === undefined) throw new NotFoundError(`no thing named ${JSON.stringify(name)}`)
    return t
  }
  return [
    route(/^\/v1\/things$/, {
      GET: ({ url }) => [200, { things: registry.listThings(filterFrom(url)).map(thingView) }],
      POST: ({ body }) => [201, thingView(registry.createThing(defined(parseBody(newThing, body))))],
    }),
    route(/^\/v1\/things\/([^/]+)$/, {
      GET: ({ params: [name = ''] }) => [200, { ...thingView(mustGet(name)), groups: registry.groupsOf(name) }],
      PUT: ({ params: [name = ''], body }) => {
        const existed = registry.getThing(name) !== undefined
        return [existed ? 200 : 201, thingView(registry.putThing({ name, ...defined(parseBody(wholeThing, body)) }))]
      },
      PATCH: ({ params: [name = ''], body }) => [200, thingView(registry.patchThing(name, defined(parseBody(patch, body))))],
      DELETE: ({ params: [name = ''] }) => [200, { removed: thingView(registry.removeThing(name)) }],
    }),
  ]
}
