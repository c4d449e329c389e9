/**
 * The deployment document: the contract between the cloud shim's deployment orchestrator and the
 * coordinator's deploy agent, carried by the coordinator's own named shadow `deployment`.
 *
 * - desired (written by the cloud): which task set this coordinator should run, as revision N.
 *   Revisions only go up per coordinator; a higher revision supersedes every lower one.
 * - reported (written by the coordinator): how far it got with which revision.
 *
 * Shadow arrays may not hold null, so optional fields inside `tasks` are left out, never null.
 */
import { z } from 'zod'
import { TASK_NAME_PATTERN, VERSION_PATTERN } from './manifest.js'
import { shadowTopic, type ShadowOperation, type ShadowRef, type ShadowReplyStatus } from './shadow-topics.js'

export const DEPLOYMENT_SHADOW = 'deployment'

/** One task of a desired set: the bundle by content address and the operator's config overrides. */
export interface DeploymentTask {
  name: string
  version: string
  /** SHA-256 hex content address of the bundle (catalog download path and integrity check). */
  digest: string
  config: Record<string, unknown>
}

export interface DesiredDeployment {
  deploymentId: string
  revision: number
  tasks: DeploymentTask[]
  /** Bundles are fetched from `${bundleBaseUrl}/${digest}` (HTTP, Range resume). */
  bundleBaseUrl: string
}

export const DEPLOY_STATUSES = ['downloading', 'staging', 'applying', 'health-check', 'succeeded', 'failed', 'rolled-back', 'rollback-failed'] as const
export type DeployStatus = (typeof DEPLOY_STATUSES)[number]

/**
 * succeeded: the new set runs. failed: refused before anything running was touched.
 * rolled-back: applying or the health check failed and the previous set was restored.
 * rollback-failed: restoring the previous set failed too (the tasks' states say how).
 */
export const TERMINAL_DEPLOY_STATUSES: ReadonlySet<DeployStatus> = new Set(['succeeded', 'failed', 'rolled-back', 'rollback-failed'])

export const TASK_DEPLOY_STATES = ['pending', 'downloading', 'staged', 'applied', 'running', 'failed', 'rolled-back'] as const
export type TaskDeployState = (typeof TASK_DEPLOY_STATES)[number]

export interface TaskReport {
  name: string
  version: string
  state: TaskDeployState
  lastError?: string
}

export interface DeploymentReport {
  deploymentId: string
  /** The desired revision this report is about. */
  revision: number
  status: DeployStatus
  tasks: TaskReport[]
  error?: string
  /** ISO 8601, the coordinator's clock. */
  at: string
}

const config = z.record(z.string(), z.unknown())
const desiredSchema = z.object({
  deploymentId: z.string().min(1).max(128),
  revision: z.number().int().min(1),
  tasks: z.array(z.object({
    name: z.string().regex(TASK_NAME_PATTERN),
    version: z.string().regex(VERSION_PATTERN),
    digest: z.string().regex(/^[0-9a-f]{64}$/),
    config: config.default(() => ({})),
  })).refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, 'task names must be unique'),
  bundleBaseUrl: z.string().regex(/^https?:\/\//),
})

const reportSchema = z.object({
  deploymentId: z.string().min(1),
  revision: z.number().int().min(1),
  status: z.enum(DEPLOY_STATUSES),
  tasks: z.array(z.object({ name: z.string(), version: z.string(), state: z.enum(TASK_DEPLOY_STATES), lastError: z.string().optional() })),
  error: z.string().optional(),
  at: z.string(),
})

export type DocumentParse<T> = { ok: true; value: T } | { ok: false; errors: string[] }

function parseWith<T>(schema: z.ZodType<T>, json: unknown): DocumentParse<T> {
  const r = schema.safeParse(json)
  if (r.success) return { ok: true, value: r.data }
  return { ok: false, errors: r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`) }
}

export const parseDesiredDeployment = (json: unknown): DocumentParse<DesiredDeployment> => parseWith(desiredSchema, json)
export const parseDeploymentReport = (json: unknown): DocumentParse<DeploymentReport> => parseWith(reportSchema, json)

export const deploymentShadowRef = (thingName: string): ShadowRef => ({ thingName, shadowName: DEPLOYMENT_SHADOW })

export const deploymentTopic = (thingName: string, op: ShadowOperation, status?: ShadowReplyStatus): string =>
  shadowTopic(deploymentShadowRef(thingName), op, status)

/** Errors travel in shadow documents, which are capped in size (8 KiB with desired included). */
export function clip(message: string, max: number): string {
  return message.length <= max ? message : `${message.slice(0, max - 1)}…`
}
