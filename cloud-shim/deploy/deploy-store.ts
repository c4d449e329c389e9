/**
 * The `deploy` table family in cloud.db: deployments, their per-coordinator targets, each
 * coordinator's revision counter and confirmed task set, every desired revision written, and
 * approved-version snapshots. Everything the orchestrator decides is committed here first, so a
 * restarted cloud shim continues every rollout where it stood.
 */
import type { DeploymentTask } from '../../coordinator/protocol/index.js'
import { migrate, type Db } from '../../coordinator/store/index.js'
import type { Deployment, DeploymentStatus, DeploymentTarget, Snapshot, TargetRef, TargetState } from './types.js'

/** Per coordinator: the revision counter and what it is known to run. */
export interface CoordinatorRecord {
  name: string
  /** The last desired revision written (revisions only go up). */
  revision: number
  /** The highest revision it reported `succeeded` for; `tasks` is that revision's set. */
  confirmedRevision: number
  tasks: DeploymentTask[]
  /** The deployment that wrote its latest desired revision. */
  owner: string | null
}

export interface RevisionRecord {
  coordinator: string
  revision: number
  deploymentId: string
  purpose: 'deploy' | 'rollback'
  tasks: DeploymentTask[]
}

const MIGRATIONS = [
  `CREATE TABLE deployments (
     id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, target_kind TEXT NOT NULL, target_name TEXT NOT NULL,
     bundles TEXT NOT NULL, rollout TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER
   );
   CREATE INDEX deployments_by_target ON deployments (target_kind, target_name, seq);
   CREATE TABLE deployment_targets (
     deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
     coordinator TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
     revision INTEGER, rollback_revision INTEGER, missing TEXT NOT NULL, error TEXT, report TEXT, previous TEXT,
     started_at INTEGER, finished_at INTEGER, updated_at INTEGER NOT NULL,
     PRIMARY KEY (deployment_id, coordinator)
   ) WITHOUT ROWID;
   CREATE INDEX deployment_targets_by_state ON deployment_targets (state);
   CREATE TABLE deploy_coordinators (
     name TEXT PRIMARY KEY, revision INTEGER NOT NULL, confirmed_revision INTEGER NOT NULL, tasks TEXT NOT NULL, owner TEXT
   ) WITHOUT ROWID;
   CREATE TABLE deploy_revisions (
     coordinator TEXT NOT NULL, revision INTEGER NOT NULL, deployment_id TEXT NOT NULL, purpose TEXT NOT NULL, tasks TEXT NOT NULL,
     PRIMARY KEY (coordinator, revision)
   ) WITHOUT ROWID;
   CREATE TABLE deploy_snapshots (group_name TEXT PRIMARY KEY, bundles TEXT NOT NULL, until INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;`,
]

type Row = Record<string, unknown>
const json = <T>(v: unknown): T => JSON.parse(v as string) as T
const nullableJson = <T>(v: unknown): T | null => (v === null ? null : json<T>(v))

const toDeployment = (r: Row): Deployment => ({
  id: r['id'] as string,
  seq: r['seq'] as number,
  target: (r['target_kind'] === 'thing' ? { thing: r['target_name'] } : { group: r['target_name'] }) as TargetRef,
  bundles: json(r['bundles']),
  rollout: json(r['rollout']),
  status: r['status'] as DeploymentStatus,
  reason: r['reason'] as string | null,
  createdAt: r['created_at'] as number,
  updatedAt: r['updated_at'] as number,
  finishedAt: r['finished_at'] as number | null,
})

const toTarget = (r: Row): DeploymentTarget => ({
  deploymentId: r['deployment_id'] as string,
  coordinator: r['coordinator'] as string,
  position: r['position'] as number,
  state: r['state'] as TargetState,
  revision: r['revision'] as number | null,
  rollbackRevision: r['rollback_revision'] as number | null,
  missing: json(r['missing']),
  error: r['error'] as string | null,
  report: nullableJson(r['report']),
  previous: nullableJson(r['previous']),
  startedAt: r['started_at'] as number | null,
  finishedAt: r['finished_at'] as number | null,
  updatedAt: r['updated_at'] as number,
})

const targetParams = (t: DeploymentTarget): Row => ({
  ...t, missing: JSON.stringify(t.missing), report: t.report === null ? null : JSON.stringify(t.report),
  previous: t.previous === null ? null : JSON.stringify(t.previous),
})

export class DeployStore {
  readonly #db: Db
  readonly #sql

  constructor(db: Db) {
    migrate(db, 'deploy', MIGRATIONS)
    this.#db = db
    this.#sql = {
      maxSeq: db.prepare<[], { s: number | null }>('SELECT MAX(seq) AS s FROM deployments'),
      insert: db.prepare(`INSERT INTO deployments (id, seq, target_kind, target_name, bundles, rollout, status, reason, created_at, updated_at, finished_at)
        VALUES (@id, @seq, @kind, @name, @bundles, @rollout, @status, @reason, @createdAt, @updatedAt, @finishedAt)`),
      update: db.prepare('UPDATE deployments SET status = @status, reason = @reason, updated_at = @updatedAt, finished_at = @finishedAt WHERE id = @id'),
      get: db.prepare<[string], Row>('SELECT * FROM deployments WHERE id = ?'),
      list: db.prepare<[number], Row>('SELECT * FROM deployments ORDER BY seq DESC LIMIT ?'),
      withStatus: db.prepare<[string], Row>('SELECT * FROM deployments WHERE status IN (SELECT value FROM json_each(?)) ORDER BY seq'),
      byTarget: db.prepare<[string, string], Row>('SELECT * FROM deployments WHERE target_kind = ? AND target_name = ? ORDER BY seq DESC'),
      targets: db.prepare<[string], Row>('SELECT * FROM deployment_targets WHERE deployment_id = ? ORDER BY position'),
      inFlight: db.prepare<[], Row>("SELECT * FROM deployment_targets WHERE state IN ('in-progress', 'rolling-back') ORDER BY deployment_id, position"),
      target: db.prepare<[string, string], Row>('SELECT * FROM deployment_targets WHERE deployment_id = ? AND coordinator = ?'),
      putTarget: db.prepare(`INSERT OR REPLACE INTO deployment_targets (deployment_id, coordinator, position, state, revision, rollback_revision,
        missing, error, report, previous, started_at, finished_at, updated_at) VALUES (@deploymentId, @coordinator, @position, @state, @revision,
        @rollbackRevision, @missing, @error, @report, @previous, @startedAt, @finishedAt, @updatedAt)`),
      coordinator: db.prepare<[string], Row>('SELECT * FROM deploy_coordinators WHERE name = ?'),
      putCoordinator: db.prepare(`INSERT OR REPLACE INTO deploy_coordinators (name, revision, confirmed_revision, tasks, owner)
        VALUES (@name, @revision, @confirmedRevision, @tasks, @owner)`),
      revision: db.prepare<[string, number], Row>('SELECT * FROM deploy_revisions WHERE coordinator = ? AND revision = ?'),
      putRevision: db.prepare('INSERT INTO deploy_revisions (coordinator, revision, deployment_id, purpose, tasks) VALUES (@coordinator, @revision, @deploymentId, @purpose, @tasks)'),
      snapshot: db.prepare<[string], Row>('SELECT * FROM deploy_snapshots WHERE group_name = ?'),
      putSnapshot: db.prepare('INSERT OR REPLACE INTO deploy_snapshots (group_name, bundles, until, created_at) VALUES (@group, @bundles, @until, @createdAt)'),
      removeSnapshot: db.prepare<[string]>('DELETE FROM deploy_snapshots WHERE group_name = ?'),
    }
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)()
  }

  nextSeq(): number {
    return (this.#sql.maxSeq.get()?.s ?? 0) + 1
  }

  insert(d: Deployment): void {
    const [kind, name] = 'thing' in d.target ? ['thing', d.target.thing] : ['group', d.target.group]
    this.#sql.insert.run({ ...d, kind, name, bundles: JSON.stringify(d.bundles), rollout: JSON.stringify(d.rollout) })
  }

  update(d: Deployment): void {
    this.#sql.update.run({ id: d.id, status: d.status, reason: d.reason, updatedAt: d.updatedAt, finishedAt: d.finishedAt })
  }

  get(id: string): Deployment | undefined {
    const r = this.#sql.get.get(id)
    return r === undefined ? undefined : toDeployment(r)
  }

  /** Newest first. */
  list(limit: number): Deployment[] {
    return this.#sql.list.all(limit).map(toDeployment)
  }

  /** Oldest first. */
  withStatus(statuses: Iterable<DeploymentStatus>): Deployment[] {
    return this.#sql.withStatus.all(JSON.stringify([...statuses])).map(toDeployment)
  }

  /** Newest first. */
  byTarget(target: TargetRef): Deployment[] {
    return ('thing' in target ? this.#sql.byTarget.all('thing', target.thing) : this.#sql.byTarget.all('group', target.group)).map(toDeployment)
  }

  targets(deploymentId: string): DeploymentTarget[] {
    return this.#sql.targets.all(deploymentId).map(toTarget)
  }

  /** Targets waiting for a coordinator's report, whatever their deployment's status. */
  inFlight(): DeploymentTarget[] {
    return this.#sql.inFlight.all().map(toTarget)
  }

  target(deploymentId: string, coordinator: string): DeploymentTarget | undefined {
    const r = this.#sql.target.get(deploymentId, coordinator)
    return r === undefined ? undefined : toTarget(r)
  }

  putTarget(t: DeploymentTarget): void {
    this.#sql.putTarget.run(targetParams(t))
  }

  coordinator(name: string): CoordinatorRecord {
    const r = this.#sql.coordinator.get(name)
    if (r === undefined) return { name, revision: 0, confirmedRevision: 0, tasks: [], owner: null }
    return { name, revision: r['revision'] as number, confirmedRevision: r['confirmed_revision'] as number, tasks: json(r['tasks']), owner: r['owner'] as string | null }
  }

  putCoordinator(c: CoordinatorRecord): void {
    this.#sql.putCoordinator.run({ ...c, tasks: JSON.stringify(c.tasks) })
  }

  revision(coordinator: string, revision: number): RevisionRecord | undefined {
    const r = this.#sql.revision.get(coordinator, revision)
    if (r === undefined) return undefined
    return { coordinator, revision, deploymentId: r['deployment_id'] as string, purpose: r['purpose'] as RevisionRecord['purpose'], tasks: json(r['tasks']) }
  }

  putRevision(r: RevisionRecord): void {
    this.#sql.putRevision.run({ ...r, tasks: JSON.stringify(r.tasks) })
  }

  snapshot(group: string): Snapshot | undefined {
    const r = this.#sql.snapshot.get(group)
    if (r === undefined) return undefined
    return { group, bundles: json(r['bundles']), until: r['until'] as number, createdAt: r['created_at'] as number }
  }

  putSnapshot(s: Snapshot): void {
    this.#sql.putSnapshot.run({ ...s, bundles: JSON.stringify(s.bundles) })
  }

  removeSnapshot(group: string): boolean {
    return this.#sql.removeSnapshot.run(group).changes > 0
  }
}
