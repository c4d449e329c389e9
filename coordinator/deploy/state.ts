/**
 * The deploy agent's local state, in the coordinator's SQLite file next to the tasks table:
 *
 * - `deploy_journal`: one row per desired revision this coordinator worked on, with its phase and,
 *   before anything running is touched, the task rows it is about to change (the previous set).
 *   A crash at any point leaves enough here to put the previous set back with no network.
 * - `deploy_managed`: the task names deployments own. A task installed by `edge-task push` is not
 *   in it and no deployment removes it; if a deployment took such a task over, the local row it
 *   replaced is kept (`adopted`) and put back when no deployment wants that name any more.
 */
import type { Clock } from '../core/clock.js'
import { TERMINAL_DEPLOY_STATUSES, type DeployStatus, type DesiredDeployment, type TaskReport } from '../protocol/index.js'
import { migrate, type Db } from '../store/index.js'
import type { TaskRow } from '../tasks/index.js'

/** A deploy status, or `superseded`: a newer revision arrived first (local only, never reported). */
export type JournalPhase = DeployStatus | 'superseded'

/** name → the local task row it had (null: not installed), recorded before applying. */
export type RowSet = Record<string, TaskRow | null>

/** name → the unmanaged local row a deployment took over (null: a deployment created the task). */
export type ManagedSet = Record<string, TaskRow | null>

export interface PreviousSet {
  rows: RowSet
  managed: ManagedSet
}

export interface JournalEntry {
  revision: number
  deploymentId: string
  target: DesiredDeployment
  phase: JournalPhase
  previous: PreviousSet | null
  tasks: TaskReport[]
  error: string | null
  startedAt: number
  updatedAt: number
}

/** Finished revisions kept for inspection; older ones are pruned. */
const KEEP_FINISHED = 20

const MIGRATIONS = [
  `CREATE TABLE deploy_journal (
     revision INTEGER PRIMARY KEY,
     deployment_id TEXT NOT NULL,
     target TEXT NOT NULL,
     phase TEXT NOT NULL,
     previous TEXT,
     tasks TEXT NOT NULL,
     error TEXT,
     started_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE deploy_managed (name TEXT PRIMARY KEY, adopted TEXT) WITHOUT ROWID;`,
]

interface Row {
  revision: number
  deployment_id: string
  target: string
  phase: JournalPhase
  previous: string | null
  tasks: string
  error: string | null
  started_at: number
  updated_at: number
}

const toEntry = (r: Row): JournalEntry => ({
  revision: r.revision,
  deploymentId: r.deployment_id,
  target: JSON.parse(r.target) as DesiredDeployment,
  phase: r.phase,
  previous: r.previous === null ? null : (JSON.parse(r.previous) as PreviousSet),
  tasks: JSON.parse(r.tasks) as TaskReport[],
  error: r.error,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
})

export const isFinished = (phase: JournalPhase): boolean => phase === 'superseded' || TERMINAL_DEPLOY_STATUSES.has(phase)

const rowDigests = (rows: Record<string, TaskRow | null>): string[] => Object.values(rows).flatMap((r) => (r === null ? [] : [r.digest]))

export class DeployJournal {
  readonly #db: Db
  readonly #clock: Clock
  readonly #sql

  constructor(db: Db, clock: Clock) {
    migrate(db, 'deploy', MIGRATIONS)
    this.#db = db
    this.#clock = clock
    this.#sql = {
      get: db.prepare<[number], Row>('SELECT * FROM deploy_journal WHERE revision = ?'),
      latest: db.prepare<[], Row>('SELECT * FROM deploy_journal ORDER BY revision DESC LIMIT 1'),
      lastSucceeded: db.prepare<[], Row>("SELECT * FROM deploy_journal WHERE phase = 'succeeded' ORDER BY revision DESC LIMIT 1"),
      unfinished: db.prepare<[], Row>("SELECT * FROM deploy_journal WHERE phase NOT IN ('succeeded', 'failed', 'rolled-back', 'rollback-failed', 'superseded') ORDER BY revision"),
      maxFinished: db.prepare<[], { r: number | null }>("SELECT MAX(revision) AS r FROM deploy_journal WHERE phase IN ('succeeded', 'failed', 'rolled-back', 'rollback-failed', 'superseded')"),
      insert: db.prepare(`INSERT INTO deploy_journal (revision, deployment_id, target, phase, previous, tasks, error, started_at, updated_at)
        VALUES (@revision, @deploymentId, @target, @phase, NULL, @tasks, NULL, @now, @now)`),
      update: db.prepare(`UPDATE deploy_journal SET phase = @phase, tasks = @tasks, error = @error, updated_at = @now WHERE revision = @revision`),
      setPrevious: db.prepare<[string, number]>('UPDATE deploy_journal SET previous = ? WHERE revision = ?'),
      prune: db.prepare<[number]>(`DELETE FROM deploy_journal WHERE revision IN (SELECT revision FROM deploy_journal
        WHERE phase IN ('succeeded', 'failed', 'rolled-back', 'rollback-failed', 'superseded') ORDER BY revision DESC LIMIT -1 OFFSET ?)`),
      managed: db.prepare<[], { name: string; adopted: string | null }>('SELECT name, adopted FROM deploy_managed ORDER BY name'),
      clearManaged: db.prepare('DELETE FROM deploy_managed'),
      putManaged: db.prepare<[string, string | null]>('INSERT INTO deploy_managed (name, adopted) VALUES (?, ?)'),
    }
  }

  get(revision: number): JournalEntry | undefined {
    const r = this.#sql.get.get(revision)
    return r === undefined ? undefined : toEntry(r)
  }

  latest(): JournalEntry | undefined {
    const r = this.#sql.latest.get()
    return r === undefined ? undefined : toEntry(r)
  }

  /** Revisions still in progress (normally at most one; more only after a crash). */
  unfinished(): JournalEntry[] {
    return this.#sql.unfinished.all().map(toEntry)
  }

  /** The highest revision that reached an end; desired revisions at or below it are done with. */
  maxFinished(): number {
    return this.#sql.maxFinished.get()?.r ?? 0
  }

  /** Starts (or, after a restart, resumes) work on a revision. */
  begin(target: DesiredDeployment, tasks: TaskReport[]): JournalEntry {
    const existing = this.get(target.revision)
    if (existing !== undefined) return existing
    this.#sql.insert.run({ revision: target.revision, deploymentId: target.deploymentId, target: JSON.stringify(target), phase: 'downloading', tasks: JSON.stringify(tasks), now: this.#clock.now() })
    return this.get(target.revision) as JournalEntry
  }

  update(revision: number, phase: JournalPhase, tasks: TaskReport[], error: string | null = null): void {
    this.#sql.update.run({ revision, phase, tasks: JSON.stringify(tasks), error, now: this.#clock.now() })
  }

  /** Committed before the first task is touched: from here on a crash means "put `previous` back". */
  startApplying(revision: number, previous: PreviousSet, tasks: TaskReport[]): void {
    this.#db.transaction(() => {
      this.#sql.setPrevious.run(JSON.stringify(previous), revision)
      this.update(revision, 'applying', tasks)
    })()
  }

  /** Ends a revision; a success also records which tasks deployments now own, in the same commit. */
  finish(revision: number, phase: JournalPhase, tasks: TaskReport[], error: string | null, managed?: ManagedSet): void {
    this.#db.transaction(() => {
      this.update(revision, phase, tasks, error)
      if (managed !== undefined) this.setManaged(managed)
      this.#sql.prune.run(KEEP_FINISHED)
    })()
  }

  managed(): ManagedSet {
    return Object.fromEntries(this.#sql.managed.all().map((r) => [r.name, r.adopted === null ? null : (JSON.parse(r.adopted) as TaskRow)]))
  }

  setManaged(managed: ManagedSet): void {
    this.#sql.clearManaged.run()
    for (const [name, adopted] of Object.entries(managed)) this.#sql.putManaged.run(name, adopted === null ? null : JSON.stringify(adopted))
  }

  /**
   * Bundle files the task store must keep although no task row may name them: what unfinished
   * revisions stage and would roll back to, the set before the last success (so a rollback the
   * cloud asks for needs no download), and the local tasks deployments took over.
   */
  retainedDigests(): string[] {
    const out: string[] = []
    for (const e of this.unfinished()) out.push(...e.target.tasks.map((t) => t.digest), ...rowDigests(e.previous?.rows ?? {}))
    const last = this.#sql.lastSucceeded.get()
    if (last !== undefined) out.push(...rowDigests(toEntry(last).previous?.rows ?? {}))
    out.push(...rowDigests(this.managed()))
    return out
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)()
  }
}
