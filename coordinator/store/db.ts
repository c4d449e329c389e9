import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export type Db = Database.Database

export interface OpenOptions {
  /**
   * 'full' fsyncs the WAL on every commit (survives power loss); 'normal' survives a process
   * crash (kill -9) but may lose the last commits on power loss. Batched commits keep 'full' fast.
   */
  synchronous?: 'full' | 'normal'
}

/** Opens (creating if needed) a SQLite file in WAL mode with the pragmas every store relies on. */
export function openDatabase(file: string, opts: OpenOptions = {}): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true })
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    family TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (family, version))`)
  return db
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
