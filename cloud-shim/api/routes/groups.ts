import { z } from 'zod'
import type { Route } from '../../../coordinator/api/index.js'
import { InvalidArgumentError, NotFoundError } from '../../../coordinator/core/errors.js'
import type { Group, GroupDefinition, Registry } from '../../registry/index.js'
import { iso, parseBody, route } from '../respond.js'

const definitionFields = { query: z.string().optional(), members: z.array(z.string()).optional() }
const newGroup = z.object({ name: z.string(), ...definitionFields }).strict()
const groupDefinition = z.object(definitionFields).strict()

/** Exactly one of `query` (dynamic group) or `members` (static group). */
function definitionOf(d: { query?: string | undefined; members?: string[] | undefined }): GroupDefinition {
  if ((d.query === undefined) === (d.members === undefined)) throw new InvalidArgumentError('give exactly one of "query" (a dynamic group) or "members" (a static group)')
  return d.query !== undefined ? { kind: 'dynamic', query: d.query } : { kind: 'static', members: d.members ?? [] }
}

const groupView = (g: Group, members: string[]): Record<string, unknown> => ({ ...g, createdAt: iso(g.createdAt), updatedAt: iso(g.updatedAt), members })

/** Groups: list, create, read with members, redefine, remove. Query previews are `GET /v1/things?query=`. */
export function groupRoutes(registry: Registry): Route[] {
  const view = (g: Group): Record<string, unknown> => groupView(g, registry.membersOf(g.name))
  const mustGet = (name: string): Group => {
    const g = registry.getGroup(name)
    if (g === undefined) throw new NotFoundError(`no group named ${JSON.stringify(name)}`)
    return g
  }
  return [
    route(/^\/v1\/groups$/, {
      GET: () => [200, { groups: registry.listGroups().map(view) }],
      POST: ({ body }) => {
        const req = parseBody(newGroup, body)
        return [201, view(registry.createGroup(req.name, definitionOf(req)))]
      },
    }),
    route(/^\/v1\/groups\/([^/]+)$/, {
      GET: ({ params: [name = ''] }) => [200, view(mustGet(name))],
      PUT: ({ params: [name = ''], body }) => {
        const existed = registry.getGroup(name) !== undefined
        return [existed ? 200 : 201, view(registry.putGroup(name, definitionOf(parseBody(groupDefinition, body))))]
      },
      DELETE: ({ params: [name = ''] }) => {
        const members = registry.membersOf(name)
        return [200, { removed: groupView(registry.removeGroup(name), members) }]
      },
    }),
    route(/^\/v1\/groups\/([^/]+)\/members$/, {
      GET: ({ params: [name = ''] }) => [200, { group: name, members: registry.membersOf(name) }],
    }),
  ]
}
