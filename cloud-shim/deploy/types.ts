/**
 * Deployments as the cloud shim records them, and the validation of what operators send.
 * The wire contract with coordinators (the `deployment` shadow) is coordinator/protocol/deployment.ts.
 */
import { z } from 'zod'
import { CoordinatorError } from '../../coordinator/core/errors.js'
import type { DeploymentReport, DeploymentTask } from '../../coordinator/protocol/index.js'

export type TargetRef = { thing: string } | { group: string }

export type FailureThreshold = { count: number } | { percent: number }

export interface RolloutPolicy {
  /** Coordinators working on the deployment at once. */
  maxConcurrent: number
  /** Failures (failed or timed out) at which the rollout aborts: a count, or a share of eligible targets. */
  failureThreshold: FailureThreshold
  /** From the desired write to a final report. */
  perCoordinatorTimeoutMs: number
  onFailure: 'rollback' | 'leave'
}

export const ROLLOUT_DEFAULTS: Readonly<RolloutPolicy> = Object.freeze({
  maxConcurrent: 5,
  failureThreshold: { count: 1 },
  perCoordinatorTimeoutMs: 300_000,
  onFailure: 'rollback',
})

/** A bundle resolved from the catalog when the deployment was created. */
export interface ResolvedBundle extends DeploymentTask {
  requires: string[]
}

/**
 * in-progress → succeeded | completed-with-failures (under the threshold) | aborted (over it,
 * onFailure 'leave') | rolling-back → rolled-back | rollback-failed; or cancelled | superseded.
 */
export type DeploymentStatus =
  | 'in-progress' | 'succeeded' | 'completed-with-failures' | 'aborted' | 'rolling-back' | 'rolled-back' | 'rollback-failed'
  | 'cancelled' | 'superseded'

export const ACTIVE_STATUSES: ReadonlySet<DeploymentStatus> = new Set(['in-progress', 'rolling-back'])
/** A group's current deployment, which coordinators joining the group later receive. */
export const CURRENT_STATUSES: ReadonlySet<DeploymentStatus> = new Set(['in-progress', 'succeeded', 'completed-with-failures'])

/**
 * pending → in-progress → succeeded | failed | timed-out; or not-eligible, skipped (aborted,
 * cancelled, left the group), superseded (a newer deployment took the coordinator over); after an
 * abort with rollback: rolling-back → rolled-back | rollback-failed.
 */
export type TargetState =
  | 'pending' | 'not-eligible' | 'in-progress' | 'succeeded' | 'failed' | 'timed-out' | 'skipped' | 'superseded'
  | 'rolling-back' | 'rolled-back' | 'rollback-failed'

export interface Deployment {
  id: string
  /** Creation order; "newer" always means a higher seq. */
  seq: number
  target: TargetRef
  bundles: ResolvedBundle[]
  rollout: RolloutPolicy
  status: DeploymentStatus
  /** Why it ended the way it did (threshold, cancel, superseded by ...). */
  reason: string | null
  createdAt: number
  updatedAt: number
  /** Set once the rollout first settled; later group joiners are then followed without aborts. */
  finishedAt: number | null
}

export interface DeploymentTarget {
  deploymentId: string
  coordinator: string
  /** Rollout order (coordinator names sorted; later joiners appended). */
  position: number
  state: TargetState
  /** The desired revision written for this deployment, and for its rollback. */
  revision: number | null
  rollbackRevision: number | null
  /** Capability tags the coordinator lacks (not-eligible). */
  missing: string[]
  error: string | null
  /** The coordinator's last report about either revision. */
  report: DeploymentReport | null
  /** The task set the coordinator had confirmed when it was started: what a rollback writes back. */
  previous: DeploymentTask[] | null
  startedAt: number | null
  finishedAt: number | null
  updatedAt: number
}

/** A group's approved versions, frozen until `until`. */
export interface Snapshot {
  group: string
  bundles: string[]
  until: number
  createdAt: number
}

export class NotApprovedError extends CoordinatorError {
  readonly code = 'COORD_DEPLOY_NOT_APPROVED' as const
}

const positiveInt = z.number().int().min(1)

const thresholdSchema = z.union([
  z.object({ count: positiveInt }).strict(),
  z.object({ percent: z.number().gt(0).max(100) }).strict(),
])

export const createRequestSchema = z.object({
  target: z.union([z.object({ thing: z.string() }).strict(), z.object({ group: z.string() }).strict()]),
  bundles: z.array(z.object({ name: z.string(), version: z.string(), config: z.record(z.string(), z.unknown()).optional() }).strict()),
  rollout: z.object({
    maxConcurrent: positiveInt.max(1000).optional(),
    failureThreshold: thresholdSchema.optional(),
    perCoordinatorTimeoutMs: z.number().int().min(1000).max(7 * 24 * 3600_000).optional(),
    onFailure: z.enum(['rollback', 'leave']).optional(),
  }).strict().optional(),
}).strict()

export type CreateRequest = z.infer<typeof createRequestSchema>

export const snapshotRequestSchema = z.object({
  bundles: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}@\S+$/, 'expected name@version')).min(1),
  /** ISO 8601 or epoch milliseconds. */
  until: z.union([z.string(), z.number()]),
}).strict()

export const cancelRequestSchema = z.object({ rollback: z.boolean().optional() }).strict()

export const targetLabel = (t: TargetRef): string => ('thing' in t ? `thing:${t.thing}` : `group:${t.group}`)
export const bundleLabel = (b: Pick<ResolvedBundle, 'name' | 'version'>): string => `${b.name}@${b.version}`
