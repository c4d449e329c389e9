import { Encoder } from 'cbor-x'
import { InvalidArgumentError } from '../core/errors.js'
import { migrate, type Db } from '../store/index.js'
import { payloadTooLarge } from './errors.js'

export type DesiredState = 'running' | 'stopped'

/** One installed task as persisted: which bundle, with which config overrides, meant to run or not. */
export interface TaskRow {
  name: string
  digest: string
  /** keyId of the bundle's signer, null when unsigned; kept so stopped tasks report it unread. */
  signer: string | null
  /** The manifest's JSON text as it was in the bundle. */
  manifest: string
  /** The operator's config overrides (not the resolved config: new defaults apply on upgrade). */
  config: Record<string, unknown>
  desired: DesiredState
  /** Epoch milliseconds. */
  installedAt: number
}

const MIGRATIONS = [
  `CREATE TABLE tasks (
     name TEXT PRIMARY KEY,
     digest TEXT NOT NULL,
     signer TEXT,
     manifest TEXT NOT NULL,
     config TEXT NOT NULL,
     desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
     installed_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
  // No foreign key to tasks: a long-lived task's start() may write state while its first install
  // is still loading, before its row exists.
  `CREATE TABLE task_kv (
     task TEXT NOT NULL,
     key TEXT NOT NULL,
     value BLOB NOT NULL,
     PRIMARY KEY (task, key)
   ) WITHOUT ROWID`,
]

interface Row {
  name: string
  digest: string
  signer: string | null
  manifest: string
  config: string
  desired: DesiredState
  installed_at: number
}

const toTaskRow = (r: Row): TaskRow => ({
  name: r.name,
  digest: r.digest,
  signer: r.signer,
  manifest: r.manifest,
  config: JSON.parse(r.config) as Record<string, unknown>,
  desired: r.desired,
  installedAt: r.installed_at,
})

/** Standard CBOR maps and byte strings (no cbor-x records), so stored state stays readable by any tool. */
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, copyBuffers: true })

/** Per-task key/value limits, so one task cannot fill the gateway's storage. */
export const KV_LIMITS = Object.freeze({ maxKeyLength: 256, maxValueBytes: 64 * 1024, maxKeys: 10_000, maxListed: 1000 })

/** The `tasks` table family: installed tasks and each task's key/value state. */
export class TaskStore {
  readonly #db: Db
  readonly #stmts

  constructor(db: Db) {
    migrate(db, 'tasks', MIGRATIONS)
    this.#db = db
    this.#stmts = {
      list: db.prepare<[], Row>('SELECT * FROM tasks ORDER BY name'),
      get: db.prepare<[string], Row>('SELECT * FROM tasks WHERE name = ?'),
      upsert: db.prepare(`INSERT INTO tasks (name, digest, signer, manifest, config, desired, installed_at)
        VALUES (@name, @digest, @signer, @manifest, @config, @desired, @installedAt)
        ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, signer = excluded.signer, manifest = excluded.manifest,
          config = excluded.config, desired = excluded.desired, installed_at = excluded.installed_at`),
      setDesired: db.prepare<[DesiredState, string]>('UPDATE tasks SET desired = ? WHERE name = ?'),
      remove: db.prepare<[string]>('DELETE FROM tasks WHERE name = ?'),
      kvGet: db.prepare<[string, string], { value: Buffer }>('SELECT value FROM task_kv WHERE task = ? AND key = ?'),
      kvHas: db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM task_kv WHERE task = ? AND key = ?'),
      kvCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM task_kv WHERE task = ?'),
      kvPut: db.prepare<[string, string, Buffer]>(`INSERT INTO task_kv (task, key, value) VALUES (?, ?, ?)
        ON CONFLICT (task, key) DO UPDATE SET value = excluded.value`),
      kvDelete: db.prepare<[string, string]>('DELETE FROM task_kv WHERE task = ? AND key = ?'),
      kvFrom: db.prepare<[string, string], { key: string }>('SELECT key FROM task_kv WHERE task = ? AND key >= ? ORDER BY key'),
      kvClear: db.prepare<[string]>('DELETE FROM task_kv WHERE task = ?'),
    }
  }

  list(): TaskRow[] {
    return this.#stmts.list.all().map(toTaskRow)
  }

  get(name: string): TaskRow | undefined {
    const row = this.#stmts.get.get(name)
    return row === undefined ? undefined : toTaskRow(row)
  }

  put(row: TaskRow): void {
    this.#stmts.upsert.run({ ...row, config: JSON.stringify(row.config) })
  }

  setDesired(name: string, desired: DesiredState): void {
    this.#stmts.setDesired.run(desired, name)
  }

  /** The task's row and all its state, in one transaction. */
  remove(name: string): void {
    this.#db.transaction(() => {
      this.#stmts.remove.run(name)
      this.#stmts.kvClear.run(name)
    })()
  }

  clearKv(task: string): void {
    this.#stmts.kvClear.run(task)
  }

  kvGet(task: string, key: string): unknown {
    checkKey(key)
    const row = this.#stmts.kvGet.get(task, key)
    return row === undefined ? undefined : cbor.decode(row.value)
  }

  kvSet(task: string, key: string, value: unknown): void {
    checkKey(key)
    const bytes = cbor.encode(value)
    if (bytes.length > KV_LIMITS.maxValueBytes) throw payloadTooLarge(`value for key ${JSON.stringify(key)}`, bytes.length, KV_LIMITS.maxValueBytes)
    this.#db.transaction(() => {
      const isNew = this.#stmts.kvHas.get(task, key) === undefined
      if (isNew && (this.#stmts.kvCount.get(task)?.n ?? 0) >= KV_LIMITS.maxKeys) {
        throw new InvalidArgumentError(`task state is full (${KV_LIMITS.maxKeys} keys); delete keys before adding more`)
      }
      this.#stmts.kvPut.run(task, key, bytes)
    })()
  }

  kvDelete(task: string, key: string): boolean {
    checkKey(key)
    return this.#stmts.kvDelete.run(task, key).changes > 0
  }

  /** Keys starting with `prefix`, in order, at most KV_LIMITS.maxListed of them. */
  kvList(task: string, prefix: string): string[] {
    if (typeof prefix !== 'string') throw new InvalidArgumentError('key prefix must be a string')
    const keys: string[] = []
    for (const { key } of this.#stmts.kvFrom.iterate(task, prefix)) {
      if (!key.startsWith(prefix) || keys.length === KV_LIMITS.maxListed) break
      keys.push(key)
    }
    return keys
  }
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > KV_LIMITS.maxKeyLength) {
    throw new InvalidArgumentError(`key must be a string of 1-${KV_LIMITS.maxKeyLength} characters`)
  }
}
