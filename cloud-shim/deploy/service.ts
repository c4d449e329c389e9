/**
 * Fleet deployments: creation (checked by the planner), cancel, status, approved-version
 * snapshots, and the wiring of the rollout engine to its inputs: coordinators' reports, group
 * membership, and a timer for timeouts. State is in cloud.db; start() picks up every rollout
 * where a previous process left it.
 */
import type { Clock } from '../../coordinator/core/clock.js'
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../coordinator/core/errors.js'
import type { Logger } from '../../coordinator/core/log.js'
import type { DeploymentReport, ShadowLimits } from '../../coordinator/protocol/index.js'
import type { Db } from '../../coordinator/store/index.js'
import type { Catalog } from '../catalog/index.js'
import type { Registry } from '../registry/index.js'
import { DeployStore } from './deploy-store.js'
import type { Delivery, ReportHandler } from './delivery.js'
import { newTarget, Orchestrator } from './orchestrator.js'
import { planDeployment } from './planner.js'
import { ACTIVE_STATUSES, CURRENT_STATUSES, type CreateRequest, type Deployment, type DeploymentTarget, type Snapshot } from './types.js'

export interface DeploymentServiceOptions {
  db: Db
  registry: Registry
  catalog: Catalog
  delivery: Delivery
  /** Subscribes to coordinators' reports (ShadowDelivery.onReport); returns the unsubscribe. */
  reports: (handler: ReportHandler) => () => void
  /** The desired document must fit the cloud shadow with these limits. */
  limits: ShadowLimits
  /** Base of `bundleBaseUrl` in desired documents; null when the HTTP API is not reachable. */
  httpUrl: () => string | null
  clock: Clock
  log: Logger
  /** How often per-coordinator timeouts are checked. */
  tickMs?: number
}

export interface DeploymentDetail {
  deployment: Deployment
  targets: DeploymentTarget[]
}

const DEFAULT_TICK_MS = 1000
const MAX_LISTED = 200

export class DeploymentService {
  readonly #o: DeploymentServiceOptions
  readonly #store: DeployStore
  readonly #engine: Orchestrator
  readonly #stops: Array<() => void> = []

  constructor(o: DeploymentServiceOptions) {
    this.#o = o
    this.#store = new DeployStore(o.db)
    this.#engine = new Orchestrator({ store: this.#store, registry: o.registry, delivery: o.delivery, bundleBaseUrl: () => this.#bundleBaseUrl(), clock: o.clock, log: o.log })
  }

  /** Catches up with reports committed while no process listened, re-sends lost writes, resumes rollouts. */
  async start(): Promise<void> {
    this.#stops.push(this.#o.reports((coordinator, report) => this.handleReport(coordinator, report)))
    this.#stops.push(this.#o.registry.on('groupMembershipChanged', (group, added, removed) => this.#membership(group, added, removed)))
    for (const t of this.#store.inFlight()) await this.#catchUp(t)
    for (const d of this.#store.withStatus(ACTIVE_STATUSES)) this.#engine.advance(d.id)
    const timer = setInterval(() => this.tick(), this.#o.tickMs ?? DEFAULT_TICK_MS).unref()
    this.#stops.push(() => clearInterval(timer))
  }

  close(): void {
    for (const stop of this.#stops.splice(0).reverse()) stop()
  }

  /** Refused (nothing stored) when a check fails; supersedes the target's deployment in progress. */
  create(req: CreateRequest): DeploymentDetail {
    const now = this.#o.clock.now()
    const plan = planDeployment(req, { registry: this.#o.registry, catalog: this.#o.catalog, store: this.#store, limits: this.#o.limits, bundleBaseUrl: this.#bundleBaseUrl(), now })
    const seq = this.#store.nextSeq()
    const d: Deployment = {
      id: `dep-${seq}`, seq, target: plan.target, bundles: plan.bundles, rollout: plan.rollout, status: 'in-progress', reason: null,
      createdAt: now, updatedAt: now, finishedAt: null,
    }
    this.#store.transaction(() => {
      for (const old of this.#store.byTarget(plan.target)) if (ACTIVE_STATUSES.has(old.status)) this.#engine.supersede(old, d.id)
      this.#store.insert(d)
      plan.coordinators.forEach((c, i) => this.#store.putTarget(newTarget(d.id, c, i, now)))
    })
    this.#o.log.info({ deploymentId: d.id, target: plan.target, bundles: plan.bundles.map((b) => `${b.name}@${b.version}`), coordinators: plan.coordinators.length }, 'deployment created')
    this.#engine.advance(d.id)
    return this.get(d.id)
  }

  /** Stops starting coordinators; those already moved stay unless `rollback`. */
  cancel(id: string, rollback: boolean): DeploymentDetail {
    const d = this.get(id).deployment
    if (d.status !== 'in-progress') throw new ConflictError(`deployment ${id} is ${d.status}; only a deployment in progress can be cancelled`)
    this.#engine.stop(d, 'cancelled', 'cancelled by an operator', rollback)
    return this.get(id)
  }

  get(id: string): DeploymentDetail {
    const deployment = this.#store.get(id)
    if (deployment === undefined) throw new NotFoundError(`no deployment ${JSON.stringify(id)}`)
    return { deployment, targets: this.#store.targets(id) }
  }

  /** Newest first. */
  list(): DeploymentDetail[] {
    return this.#store.list(MAX_LISTED).map((deployment) => ({ deployment, targets: this.#store.targets(deployment.id) }))
  }

  handleReport(coordinator: string, report: DeploymentReport): void {
    this.#engine.handleReport(coordinator, report)
  }

  /** Checks per-coordinator timeouts now (a timer does it every tickMs). */
  tick(): void {
    this.#engine.tick()
  }

  /** Freezes the versions a group may receive until `until` (epoch ms). */
  putSnapshot(group: string, bundles: string[], until: number): Snapshot {
    if (this.#o.registry.getGroup(group) === undefined) throw new NotFoundError(`no group named ${JSON.stringify(group)}`)
    const now = this.#o.clock.now()
    if (!Number.isFinite(until) || until <= now) throw new InvalidArgumentError('"until" must be a time in the future')
    for (const b of bundles) {
      const at = b.lastIndexOf('@')
      if (this.#o.catalog.get(b.slice(0, at), b.slice(at + 1)) === undefined) throw new InvalidArgumentError(`bundle ${b} is not in the catalog`)
    }
    const snapshot: Snapshot = { group, bundles: [...new Set(bundles)].sort(), until, createdAt: now }
    this.#store.putSnapshot(snapshot)
    this.#o.log.info({ group, bundles: snapshot.bundles, until: new Date(until).toISOString() }, 'approved-version snapshot set')
    return snapshot
  }

  snapshot(group: string): Snapshot {
    const s = this.#store.snapshot(group)
    if (s === undefined) throw new NotFoundError(`group ${JSON.stringify(group)} has no approved-version snapshot`)
    return s
  }

  removeSnapshot(group: string): Snapshot {
    const s = this.snapshot(group)
    this.#store.removeSnapshot(group)
    return s
  }

  #bundleBaseUrl(): string | null {
    const base = this.#o.httpUrl()
    return base === null ? null : `${base.replace(/\/+$/, '')}/v1/bundles/by-digest`
  }

  /** A target whose coordinator may have reported, or whose desired write may be lost, while we were down. */
  async #catchUp(t: DeploymentTarget): Promise<void> {
    const d = this.#store.get(t.deploymentId)
    if (d === undefined) return
    const { desiredRevision, report } = await this.#o.delivery.read(t.coordinator)
    const expected = t.state === 'rolling-back' ? t.rollbackRevision : t.revision
    if (expected !== null && (desiredRevision ?? 0) < expected) this.#engine.redeliver(d, t)
    if (report !== null) this.#engine.handleReport(t.coordinator, report)
  }

  /** Late joiners get the group's current deployment; leavers lose their turn if it has not come. */
  #membership(group: string, added: string[], removed: string[]): void {
    const deployments = this.#store.byTarget({ group })
    for (const d of deployments.filter((x) => ACTIVE_STATUSES.has(x.status))) for (const name of removed) this.#engine.leave(d, name)
    const current = deployments.find((x) => CURRENT_STATUSES.has(x.status))
    if (current === undefined) return
    for (const name of added) {
      if (this.#o.registry.getThing(name)?.kind !== 'coordinator') continue
      this.#o.log.info({ deploymentId: current.id, coordinator: name, group }, 'coordinator joined a deployed group')
      this.#engine.follow(this.#store.get(current.id) ?? current, name)
    }
  }
}
