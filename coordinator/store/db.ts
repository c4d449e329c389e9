import Database from 'better-sqlite3'
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { CoordinatorError } from '../core/errors.js'

export type Db = Database.Database

export interface OpenOptions {
  /**
   * 'full' fsyncs the WAL on every commit (survives power loss); 'normal' survives a process
   * crash (kill -9) but may lose the last commits on power loss. Batched commits keep 'full' fast.
   */
  synchronous?: 'full' | 'normal'
}

/** The files hold shadows, queued messages and token hashes: owner-only, like the data directory. */
const FILE_MODE = 0o600
/** quick_check stops listing problems after this many; one is enough to refuse the file. */
const MAX_REPORTED_PROBLEMS = 5

/** A database file that SQLite cannot read back whole: start-up stops rather than serve from it. */
export class CorruptDatabaseError extends CoordinatorError {
  readonly code = 'COORD_STORE_CORRUPT' as const
  constructor(readonly file: string, detail: string) {
    super(`database ${file} is corrupted (${detail}). Stop the daemon, move ${file} and its -wal and -shm files aside, then restore them from a backup, or salvage them with \`sqlite3 ${file} .recover | sqlite3 recovered.db\` and put recovered.db in its place; without a backup, starting without the file loses what it held`)
  }
}

/**
 * Opens (creating if needed) a SQLite file in WAL mode with the pragmas every store relies on,
 * after checking it with `PRAGMA quick_check` (every page and index structure, without the
 * slower index-content comparison of integrity_check): a broken file throws CorruptDatabaseError.
 */
export function openDatabase(file: string, opts: OpenOptions = {}): Db {
  if (file !== ':memory:') {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    restrictFiles(file)
  }
  const db = openChecked(file)
  db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    family TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (family, version))`)
  return db
}

function openChecked(file: string): Db {
  let db: Db | undefined
  try {
    db = new Database(file)
    db.pragma('journal_mode = WAL')
    const rows = db.pragma(`quick_check(${MAX_REPORTED_PROBLEMS})`) as Array<Record<string, unknown>>
    const found = rows.map((row) => String(Object.values(row)[0])).filter((p) => p !== 'ok')
    if (found.length > 0) throw new CorruptDatabaseError(file, `quick_check: ${found.join('; ')}`)
    return db
  } catch (err) {
    db?.close()
    if (err instanceof CorruptDatabaseError) throw err
    const code = (err as { code?: unknown }).code
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw new CorruptDatabaseError(file, (err as Error).message)
    throw err
  }
}

/**
 * SQLite gives the -wal and -shm files the mode of the database file, so creating that file 0600
 * first covers all three; files left by an older version are narrowed too.
 */
function restrictFiles(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', FILE_MODE))
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(f)) chmodSync(f, FILE_MODE)
  }
}

/**
 * Applies a table family's migrations in order, each in its own transaction, once.
 * `migrations[i]` is version i+1; never edit or reorder a released entry, only append.
 */
export function migrate(db: Db, family: string, migrations: readonly string[]): void {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations WHERE family = ?').get(family) as { v: number | null }
  const current = row.v ?? 0
  const record = db.prepare('INSERT INTO schema_migrations (family, version, applied_at) VALUES (?, ?, ?)')
  migrations.forEach((sql, i) => {
    const version = i + 1
    if (version <= current) return
    db.transaction(() => {
      db.exec(sql)
      record.run(family, version, Date.now())
    })()
  })
}
