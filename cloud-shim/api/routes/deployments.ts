import type { Route } from '../../../coordinator/api/index.js'
import { InvalidArgumentError } from '../../../coordinator/core/errors.js'
import {
  cancelRequestSchema, createRequestSchema, snapshotRequestSchema, targetLabel, totals,
  type DeploymentDetail, type DeploymentService, type DeploymentTarget, type Snapshot,
} from '../../deploy/index.js'
import { iso, parseBody, route } from '../respond.js'

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms))

function coordinatorView(t: DeploymentTarget): Record<string, unknown> {
  return {
    name: t.coordinator, position: t.position, state: t.state, status: t.report?.status ?? null,
    revision: t.revision, rollbackRevision: t.rollbackRevision, tasks: t.report?.tasks ?? [], error: t.error, missingTags: t.missing,
    startedAt: isoOrNull(t.startedAt), finishedAt: isoOrNull(t.finishedAt), reportedAt: t.report?.at ?? null,
    durationMs: t.startedAt !== null && t.finishedAt !== null ? t.finishedAt - t.startedAt : null,
  }
}

/** The summary `GET /v1/deployments` lists; the detail adds one entry per coordinator. */
export function deploymentView({ deployment: d, targets }: DeploymentDetail, detail: boolean): Record<string, unknown> {
  return {
    id: d.id, target: d.target, targetLabel: targetLabel(d.target), status: d.status, reason: d.reason,
    bundles: d.bundles, rollout: d.rollout, totals: totals(targets),
    createdAt: iso(d.createdAt), updatedAt: iso(d.updatedAt), finishedAt: isoOrNull(d.finishedAt),
    ...(detail ? { coordinators: targets.map(coordinatorView) } : {}),
  }
}

const snapshotView = (s: Snapshot): Record<string, unknown> => ({ ...s, until: iso(s.until), createdAt: iso(s.createdAt) })

/** An ISO 8601 time or epoch milliseconds. */
function parseUntil(v: string | number): number {
  const ms = typeof v === 'number' ? v : Date.parse(v)
  if (!Number.isFinite(ms)) throw new InvalidArgumentError(`"until" must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(v)}`)
  return ms
}

/** Deployments (create, list, status, cancel) and groups' approved-version snapshots. */
export function deploymentRoutes(deployments: DeploymentService): Route[] {
  return [
    route(/^\/v1\/deployments$/, {
      GET: () => [200, { deployments: deployments.list().map((d) => deploymentView(d, false)) }],
      POST: ({ body }) => [201, deploymentView(deployments.create(parseBody(createRequestSchema, body)), true)],
    }),
    route(/^\/v1\/deployments\/([^/]+)$/, {
      GET: ({ params: [id = ''] }) => [200, deploymentView(deployments.get(id), true)],
    }),
    route(/^\/v1\/deployments\/([^/]+)\/cancel$/, {
      POST: ({ params: [id = ''], body }) => {
        const req = body.length === 0 ? {} : parseBody(cancelRequestSchema, body)
        return [200, deploymentView(deployments.cancel(id, req.rollback === true), true)]
      },
    }),
    route(/^\/v1\/groups\/([^/]+)\/snapshot$/, {
      GET: ({ params: [group = ''] }) => [200, snapshotView(deployments.snapshot(group))],
      POST: ({ params: [group = ''], body }) => {
        const req = parseBody(snapshotRequestSchema, body)
        return [201, snapshotView(deployments.putSnapshot(group, req.bundles, parseUntil(req.until)))]
      },
      DELETE: ({ params: [group = ''] }) => [200, { removed: snapshotView(deployments.removeSnapshot(group)) }],
    }),
  ]
}
