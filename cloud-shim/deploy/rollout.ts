/**
 * The rollout's decisions as pure functions of a deployment's targets: who starts next, when the
 * failure threshold is reached, and what a settled rollout's status is. The orchestrator applies
 * them; keeping them pure keeps the rules in one readable place.
 */
import type { DeploymentStatus, DeploymentTarget, RolloutPolicy, TargetState } from './types.js'

export type Totals = Record<TargetState, number> & { targets: number }

const STATES: readonly TargetState[] = [
  'pending', 'not-eligible', 'in-progress', 'succeeded', 'failed', 'timed-out', 'skipped', 'superseded', 'rolling-back', 'rolled-back', 'rollback-failed',
]

export function totals(targets: readonly DeploymentTarget[]): Totals {
  const out = Object.fromEntries(STATES.map((s) => [s, 0])) as Totals
  for (const t of targets) out[t.state]++
  out.targets = targets.length
  return out
}

/** Failed and timed-out coordinators count; not-eligible ones were never tried. */
export const failureCount = (targets: readonly DeploymentTarget[]): number =>
  targets.filter((t) => t.state === 'failed' || t.state === 'timed-out').length

/** Reached at `count` failures, or when failures are at least `percent` of the eligible targets. */
export function thresholdReached(policy: RolloutPolicy, targets: readonly DeploymentTarget[]): boolean {
  const failures = failureCount(targets)
  if (failures === 0) return false
  const t = policy.failureThreshold
  if ('count' in t) return failures >= t.count
  const eligible = targets.filter((x) => x.state !== 'not-eligible').length
  return eligible > 0 && (failures * 100) / eligible >= t.percent
}

/** The next pending targets in rollout order, as many as free slots allow. */
export function nextToStart(targets: readonly DeploymentTarget[], maxConcurrent: number): DeploymentTarget[] {
  const inFlight = targets.filter((t) => t.state === 'in-progress').length
  return targets.filter((t) => t.state === 'pending').slice(0, Math.max(0, maxConcurrent - inFlight))
}

/** The status of a rollout with nothing pending or in flight; undefined while it is not settled. */
export function settledStatus(targets: readonly DeploymentTarget[]): DeploymentStatus | undefined {
  if (targets.some((t) => t.state === 'pending' || t.state === 'in-progress')) return undefined
  return failureCount(targets) === 0 ? 'succeeded' : 'completed-with-failures'
}

/** The status of a rollback once every coordinator answered (or timed out). */
export function rollbackStatus(targets: readonly DeploymentTarget[]): DeploymentStatus | undefined {
  if (targets.some((t) => t.state === 'rolling-back')) return undefined
  return targets.some((t) => t.state === 'rollback-failed') ? 'rollback-failed' : 'rolled-back'
}

/** Coordinators a rollback must move back: those the deployment moved, or may still be moving. */
export const needsRollback = (t: DeploymentTarget): boolean => t.state === 'succeeded' || t.state === 'in-progress' || t.state === 'timed-out'
