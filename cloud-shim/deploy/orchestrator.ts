/**
 * The rollout engine. Every decision is committed to the store before the desired documents it
 * implies are written, so a crash between the two is repaired on restart (service.ts re-delivers
 * what the store says was written). Reports are idempotent: duplicates and stale ones change
 * nothing, and a target's state only moves forward.
 */
import type { Clock } from '../../coordinator/core/clock.js'
import { K, type Logger } from '../../coordinator/core/log.js'
import { TERMINAL_DEPLOY_STATUSES, type DeploymentReport, type DeploymentTask, type DesiredDeployment } from '../../coordinator/protocol/index.js'
import type { Registry } from '../registry/index.js'
import type { DeployStore } from './deploy-store.js'
import type { Delivery } from './delivery.js'
import { approvalRefusal, missingTags } from './planner.js'
import { needsRollback, nextToStart, rollbackStatus, settledStatus, thresholdReached } from './rollout.js'
import type { Deployment, DeploymentStatus, DeploymentTarget, TargetState } from './types.js'

export interface OrchestratorOptions {
  store: DeployStore
  registry: Registry
  delivery: Delivery
  bundleBaseUrl: () => string | null
  clock: Clock
  log: Logger
}

interface Pending {
  deploymentId: string
  desired: DesiredDeployment
  coordinator: string
}

const taskSet = (d: Deployment): DeploymentTask[] => d.bundles.map(({ name, version, digest, config }) => ({ name, version, digest, config }))

export class Orchestrator {
  readonly #o: OrchestratorOptions
  readonly #store: DeployStore
  /** Desired documents decided in the current transaction, written once it committed. */
  #outgoing: Pending[] = []

  constructor(o: OrchestratorOptions) {
    this.#o = o
    this.#store = o.store
  }

  /** Starts what free slots allow, aborts past the threshold, settles a finished rollout. */
  advance(id: string): void {
    this.#store.transaction(() => this.#advance(id))
    this.#flush()
  }

  /** A coordinator's reported state, about whichever revision it names. */
  handleReport(coordinator: string, report: DeploymentReport): void {
    const rev = this.#store.revision(coordinator, report.revision)
    if (rev === undefined || rev.deploymentId !== report.deploymentId) return
    this.#store.transaction(() => {
      if (report.status === 'succeeded') this.#confirm(coordinator, rev.revision, rev.tasks)
      const t = this.#store.target(rev.deploymentId, coordinator)
      if (t === undefined) return
      const ofDeploy = rev.purpose === 'deploy' && t.revision === rev.revision
      const ofRollback = rev.purpose === 'rollback' && t.rollbackRevision === rev.revision
      if (ofDeploy || ofRollback) this.#record(t, report, ofDeploy)
      this.#advance(rev.deploymentId)
    })
    this.#flush()
  }

  /** Coordinators silent past the per-coordinator timeout count as failures (also under a cancelled deployment). */
  tick(): void {
    const now = this.#o.clock.now()
    this.#store.transaction(() => {
      const touched = new Set<string>()
      for (const t of this.#store.inFlight()) {
        const timeout = this.#store.get(t.deploymentId)?.rollout.perCoordinatorTimeoutMs ?? 0
        if (now - (t.startedAt ?? now) < timeout) continue
        const error = `no final report within ${Math.round(timeout / 1000)} s (last status: ${t.report?.status ?? 'none'})`
        this.#put(t, { state: t.state === 'in-progress' ? 'timed-out' : 'rollback-failed', error, finishedAt: now })
        touched.add(t.deploymentId)
      }
      for (const id of touched) this.#advance(id)
    })
    this.#flush()
  }

  /** Stops starting coordinators; with rollback, moves back those already moved. */
  stop(d: Deployment, status: 'aborted' | 'cancelled', reason: string, rollback: boolean): void {
    this.#store.transaction(() => this.#stop(d, status, reason, rollback))
    this.#flush()
  }

  /** A newer deployment to the same target replaces this one; its coordinators in flight are taken over when reached. */
  supersede(d: Deployment, by: string): void {
    for (const t of this.#store.targets(d.id)) if (t.state === 'pending') this.#put(t, { state: 'superseded', error: `superseded by ${by}` })
    this.#setStatus(d, 'superseded', `superseded by ${by}`)
  }

  /** A coordinator that joined a group after its deployment started (or finished) gets it too. */
  follow(d: Deployment, coordinator: string): void {
    this.#store.transaction(() => {
      const existing = this.#store.target(d.id, coordinator)
      if (existing !== undefined && existing.state !== 'skipped') return
      const position = existing?.position ?? this.#store.targets(d.id).length
      this.#store.putTarget(newTarget(d.id, coordinator, position, this.#o.clock.now()))
      if (d.status !== 'in-progress') this.#setStatus(d, 'in-progress', d.reason)
      this.#advance(d.id)
    })
    this.#flush()
  }

  /** Pending targets of a coordinator that left the group are skipped. */
  leave(d: Deployment, coordinator: string): void {
    const t = this.#store.target(d.id, coordinator)
    if (t?.state === 'pending') this.#put(t, { state: 'skipped', error: 'left the target group before its turn' })
  }

  /** Writes a target's desired document again (a restart found the write missing). */
  redeliver(d: Deployment, t: DeploymentTarget): void {
    const revision = t.state === 'rolling-back' ? t.rollbackRevision : t.revision
    const rev = revision === null ? undefined : this.#store.revision(t.coordinator, revision)
    if (rev === undefined) return
    this.#send(d.id, t.coordinator, { deploymentId: d.id, revision: rev.revision, tasks: rev.tasks, bundleBaseUrl: this.#o.bundleBaseUrl() ?? '' })
    this.#flush()
  }

  #advance(id: string): void {
    const d = this.#store.get(id)
    if (d === undefined) return
    if (d.status === 'rolling-back') {
      const done = rollbackStatus(this.#store.targets(id))
      if (done !== undefined) this.#setStatus(d, done, d.reason, true)
      return
    }
    if (d.status !== 'in-progress') return
    // A finished rollout that follows late group joiners never aborts the coordinators it already moved.
    if (d.finishedAt === null && thresholdReached(d.rollout, this.#store.targets(id))) {
      return this.#stop(d, 'aborted', 'failure threshold reached', d.rollout.onFailure === 'rollback')
    }
    for (let next = nextToStart(this.#store.targets(id), d.rollout.maxConcurrent); next.length > 0; next = nextToStart(this.#store.targets(id), d.rollout.maxConcurrent)) {
      for (const t of next) this.#start(d, t)
    }
    const settled = settledStatus(this.#store.targets(id))
    if (settled !== undefined) this.#setStatus(d, settled, d.reason, true)
  }

  /** Rechecks the coordinator (it may have changed since creation), then writes its desired revision. */
  #start(d: Deployment, t: DeploymentTarget): void {
    const thing = this.#o.registry.getThing(t.coordinator)
    if (thing?.kind !== 'coordinator') return this.#put(t, { state: 'skipped', error: 'no longer a registered coordinator' })
    const missing = missingTags(thing, d.bundles)
    if (missing.length > 0) return this.#put(t, { state: 'not-eligible', missing, error: `lacks capability tag(s) ${missing.join(', ')}` })
    const groups = [...('group' in d.target ? [d.target.group] : []), ...this.#o.registry.groupsOf(t.coordinator)]
    const refusal = approvalRefusal({ store: this.#store, now: this.#o.clock.now() }, groups, d.bundles, t.coordinator)
    if (refusal !== null) return this.#put(t, { state: 'not-eligible', error: refusal })
    const c = this.#store.coordinator(t.coordinator)
    const owner = c.owner === null || c.owner === d.id ? undefined : this.#store.get(c.owner)
    if (owner !== undefined && owner.seq > d.seq) return this.#put(t, { state: 'superseded', error: `taken over by the newer ${owner.id}` })
    if (owner !== undefined) this.#takeOver(owner, t.coordinator, d.id)
    const revision = c.revision + 1
    this.#store.putCoordinator({ ...c, revision, owner: d.id })
    this.#store.putRevision({ coordinator: t.coordinator, revision, deploymentId: d.id, purpose: 'deploy', tasks: taskSet(d) })
    this.#put(t, { state: 'in-progress', revision, previous: c.tasks, report: null, error: null, startedAt: this.#o.clock.now(), finishedAt: null })
    this.#send(d.id, t.coordinator, { deploymentId: d.id, revision, tasks: taskSet(d), bundleBaseUrl: this.#o.bundleBaseUrl() ?? '' })
  }

  /** The older owner's work on this coordinator ends here: the new revision supersedes it on the coordinator. */
  #takeOver(owner: Deployment, coordinator: string, by: string): void {
    const t = this.#store.target(owner.id, coordinator)
    if (t === undefined || (t.state !== 'in-progress' && t.state !== 'rolling-back')) return
    this.#put(t, { state: 'superseded', error: `taken over by the newer ${by}`, finishedAt: this.#o.clock.now() })
    this.#advance(owner.id)
  }

  #stop(d: Deployment, status: 'aborted' | 'cancelled', reason: string, rollback: boolean): void {
    const targets = this.#store.targets(d.id)
    for (const t of targets) if (t.state === 'pending') this.#put(t, { state: 'skipped', error: `rollout ${status}` })
    if (!rollback) return this.#setStatus(d, status, reason, true)
    this.#setStatus(d, 'rolling-back', `${reason}; rolling back`)
    for (const t of targets.filter(needsRollback)) this.#rollBack(d, t)
    this.#advance(d.id)
  }

  /** The set the coordinator had confirmed before this deployment reached it: empty for a first deployment. */
  #rollBack(d: Deployment, t: DeploymentTarget): void {
    const c = this.#store.coordinator(t.coordinator)
    if (c.owner !== d.id) return
    const revision = c.revision + 1
    const tasks = t.previous ?? []
    this.#store.putCoordinator({ ...c, revision })
    this.#store.putRevision({ coordinator: t.coordinator, revision, deploymentId: d.id, purpose: 'rollback', tasks })
    this.#put(t, { state: 'rolling-back', rollbackRevision: revision, startedAt: this.#o.clock.now(), finishedAt: null })
    this.#send(d.id, t.coordinator, { deploymentId: d.id, revision, tasks, bundleBaseUrl: this.#o.bundleBaseUrl() ?? '' })
  }

  #record(t: DeploymentTarget, report: DeploymentReport, ofDeploy: boolean): void {
    const terminal = TERMINAL_DEPLOY_STATUSES.has(report.status)
    const previous = t.report
    // At-least-once delivery may replay an older progress report after the final one.
    if (previous !== null && previous.revision === report.revision && TERMINAL_DEPLOY_STATUSES.has(previous.status) && !terminal) return
    const changes: Partial<DeploymentTarget> = { report }
    const now = this.#o.clock.now()
    if (terminal && ofDeploy && t.state === 'in-progress') {
      const ok = report.status === 'succeeded'
      Object.assign(changes, { state: ok ? 'succeeded' : 'failed', error: ok ? null : `${report.status}: ${report.error ?? 'no error given'}`, finishedAt: now })
    } else if (terminal && !ofDeploy && t.state === 'rolling-back') {
      const ok = report.status === 'succeeded'
      Object.assign(changes, { state: ok ? 'rolled-back' : 'rollback-failed', error: ok ? t.error : `rollback ${report.status}: ${report.error ?? ''}`, finishedAt: now })
    }
    this.#put(t, changes)
  }

  #confirm(coordinator: string, revision: number, tasks: DeploymentTask[]): void {
    const c = this.#store.coordinator(coordinator)
    if (revision >= c.confirmedRevision) this.#store.putCoordinator({ ...c, confirmedRevision: revision, tasks })
  }

  #put(t: DeploymentTarget, changes: Partial<DeploymentTarget> & { state?: TargetState }): void {
    this.#store.putTarget({ ...t, ...changes, updatedAt: this.#o.clock.now() })
  }

  #setStatus(d: Deployment, status: DeploymentStatus, reason: string | null, settled = false): void {
    const now = this.#o.clock.now()
    this.#store.update({ ...d, status, reason, updatedAt: now, finishedAt: settled ? d.finishedAt ?? now : d.finishedAt })
    if (status !== d.status) this.#o.log.info({ deploymentId: d.id, status, reason }, 'deployment status')
  }

  #send(deploymentId: string, coordinator: string, desired: DesiredDeployment): void {
    this.#outgoing.push({ deploymentId, coordinator, desired })
  }

  #flush(): void {
    for (const p of this.#outgoing.splice(0)) {
      void this.#o.delivery.write(p.coordinator, p.desired).then(
        (refusal) => refusal !== null && this.#refused(p, refusal),
        (err: Error) => this.#refused(p, err.message),
      )
    }
  }

  /** A desired document the shadow would not take is that coordinator's failure. */
  #refused(p: Pending, reason: string): void {
    this.#o.log.warn({ deploymentId: p.deploymentId, [K.thingName]: p.coordinator, [K.err]: reason }, 'desired deployment refused by the shadow')
    this.handleReport(p.coordinator, {
      deploymentId: p.deploymentId, revision: p.desired.revision, status: 'failed', tasks: [],
      error: `the cloud could not write the desired deployment: ${reason}`, at: new Date(this.#o.clock.now()).toISOString(),
    })
  }
}

export function newTarget(deploymentId: string, coordinator: string, position: number, now: number): DeploymentTarget {
  return {
    deploymentId, coordinator, position, state: 'pending', revision: null, rollbackRevision: null, missing: [], error: null,
    report: null, previous: null, startedAt: null, finishedAt: null, updatedAt: now,
  }
}
