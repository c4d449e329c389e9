/**
 * Everything checked when a deployment is created, before anything is stored: the target exists,
 * every bundle is catalogued (resolved to its digest) with a valid config, the group snapshots
 * involved approve every version, and the desired document fits in a shadow. Also the per-
 * coordinator checks the rollout repeats when it reaches a coordinator (capabilities, approval).
 */
import { InvalidArgumentError } from '../../coordinator/core/errors.js'
import { parseUpdateRequest, resolveConfig, type DesiredDeployment, type ShadowLimits } from '../../coordinator/protocol/index.js'
import type { Catalog } from '../catalog/index.js'
import type { Registry, Thing } from '../registry/index.js'
import type { DeployStore } from './deploy-store.js'
import { bundleLabel, NotApprovedError, ROLLOUT_DEFAULTS, type CreateRequest, type ResolvedBundle, type RolloutPolicy, type TargetRef } from './types.js'

export interface PlanContext {
  registry: Registry
  catalog: Catalog
  store: DeployStore
  limits: ShadowLimits
  bundleBaseUrl: string | null
  now: number
}

export interface Plan {
  target: TargetRef
  bundles: ResolvedBundle[]
  rollout: RolloutPolicy
  /** Target coordinators in rollout order. */
  coordinators: string[]
}

const quote = (s: string): string => JSON.stringify(s)

export function planDeployment(req: CreateRequest, ctx: PlanContext): Plan {
  if (ctx.bundleBaseUrl === null) throw new InvalidArgumentError('the cloud shim has no HTTP URL coordinators could download bundles from (set advertise.httpUrl)')
  const coordinators = targetCoordinators(req.target, ctx.registry)
  const bundles = resolveBundles(req.bundles, ctx.catalog)
  const groups = 'group' in req.target ? [req.target.group] : []
  for (const c of coordinators) {
    const refusal = approvalRefusal(ctx, [...new Set([...groups, ...ctx.registry.groupsOf(c)])], bundles, c)
    if (refusal !== null) throw new NotApprovedError(refusal)
  }
  if (coordinators.length === 0) {
    const refusal = approvalRefusal(ctx, groups, bundles, undefined)
    if (refusal !== null) throw new NotApprovedError(refusal)
  }
  checkDocumentFits(bundles, ctx)
  return { target: req.target, bundles, rollout: { ...ROLLOUT_DEFAULTS, ...req.rollout }, coordinators }
}

/** A thing target must be a coordinator; a group target's coordinators (devices in it are no targets), by name. */
function targetCoordinators(target: TargetRef, registry: Registry): string[] {
  if ('thing' in target) {
    const thing = registry.getThing(target.thing)
    if (thing?.kind !== 'coordinator') throw new InvalidArgumentError(`target thing ${quote(target.thing)} is not a registered coordinator`)
    return [thing.name]
  }
  if (registry.getGroup(target.group) === undefined) throw new InvalidArgumentError(`target group ${quote(target.group)} does not exist`)
  return registry.membersOf(target.group).filter((m) => registry.getThing(m)?.kind === 'coordinator')
}

function resolveBundles(requested: CreateRequest['bundles'], catalog: Catalog): ResolvedBundle[] {
  const seen = new Set<string>()
  return requested.map((b) => {
    if (seen.has(b.name)) throw new InvalidArgumentError(`bundle ${quote(b.name)} is named twice; a deployment runs one version of each task`)
    seen.add(b.name)
    const entry = catalog.get(b.name, b.version)
    const manifest = catalog.manifest(b.name, b.version)
    if (entry === undefined || manifest === undefined) throw new InvalidArgumentError(`bundle ${b.name}@${b.version} is not in the catalog (push it with \`edge bundles push\`)`)
    const config = b.config ?? {}
    const resolved = resolveConfig(manifest, config)
    if (!resolved.ok) throw new InvalidArgumentError(`config for ${b.name}@${b.version} is invalid: ${resolved.errors.join('; ')}`)
    return { name: b.name, version: b.version, digest: entry.digest, config, requires: entry.requires }
  })
}

/** Capability tags the coordinator lacks for any of the bundles, sorted. */
export function missingTags(thing: Thing, bundles: readonly ResolvedBundle[]): string[] {
  const have = new Set(thing.tags)
  return [...new Set(bundles.flatMap((b) => b.requires.filter((r) => !have.has(r))))].sort()
}

/**
 * Why a deployment may not reach `coordinator` (or the target group itself) under the snapshots
 * of `groups` in force, or null. Every bundle must be one of a snapshot's approved versions.
 */
export function approvalRefusal(ctx: Pick<PlanContext, 'store' | 'now'>, groups: readonly string[], bundles: readonly ResolvedBundle[], coordinator: string | undefined): string | null {
  for (const group of groups) {
    const snap = ctx.store.snapshot(group)
    if (snap === undefined || snap.until <= ctx.now) continue
    const refused = bundles.map(bundleLabel).filter((b) => !snap.bundles.includes(b))
    if (refused.length === 0) continue
    const who = coordinator === undefined ? '' : `coordinator ${quote(coordinator)} is in group ${quote(group)}, and `
    return `${who}group ${quote(group)} is frozen to approved versions until ${new Date(snap.until).toISOString()} ` +
      `(${snap.bundles.join(', ')}); not approved: ${refused.join(', ')}`
  }
  return null
}

/**
 * The desired document must pass the shadow's own checks (nesting depth, no null inside arrays,
 * size), leaving half the shadow for the coordinator's reports.
 */
function checkDocumentFits(bundles: readonly ResolvedBundle[], ctx: PlanContext): void {
  const desired: DesiredDeployment = {
    deploymentId: 'dep-0000000', revision: 1_000_000_000, tasks: bundles.map(({ name, version, digest, config }) => ({ name, version, digest, config })),
    bundleBaseUrl: ctx.bundleBaseUrl ?? '',
  }
  const text = JSON.stringify({ state: { desired } })
  const parsed = parseUpdateRequest(Buffer.from(text), ctx.limits)
  if (!parsed.ok) throw new InvalidArgumentError(`the deployment cannot travel in a shadow: ${parsed.error.message}`)
  const budget = Math.floor(ctx.limits.maxStateBytes / 2)
  const bytes = Buffer.byteLength(JSON.stringify(desired))
  if (bytes > budget) throw new InvalidArgumentError(`the deployment document is ${bytes} bytes; at most ${budget} fit in the coordinator's deployment shadow (fewer tasks or smaller configs)`)
}
