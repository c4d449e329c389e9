import type { Db } from './db.js'
import { migrate } from './db.js'

/** What the store keeps for one shadow: the live document, or a tombstone with the last version. */
export interface StoredShadow {
  /** JSON of { state, metadata } of the live document; null for a tombstone. */
  body: string | null
  version: number
  updatedAt: number
}

const MIGRATIONS = [
  `CREATE TABLE shadows (
     thing TEXT NOT NULL,
     name TEXT NOT NULL,          -- '' is the classic shadow
     body TEXT,                   -- NULL: deleted (tombstone keeps the version so it never repeats)
     version INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (thing, name)
   ) WITHOUT ROWID`,
]

/** Shadow persistence. Synchronous on purpose: the caller commits before it replies. */
export class ShadowStore {
  readonly #db: Db
  readonly #get
  readonly #put
  readonly #listNamed
  readonly #countNamed
  readonly #pruneTombstones

  constructor(db: Db) {
    migrate(db, 'shadows', MIGRATIONS)
    this.#db = db
    this.#get = db.prepare<[string, string], { body: string | null; version: number; updated_at: number }>(
      'SELECT body, version, updated_at FROM shadows WHERE thing = ? AND name = ?')
    this.#put = db.prepare(`INSERT INTO shadows (thing, name, body, version, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (thing, name) DO UPDATE SET body = excluded.body, version = excluded.version, updated_at = excluded.updated_at`)
    this.#listNamed = db.prepare<[string, string, number], { name: string }>(
      `SELECT name FROM shadows WHERE thing = ? AND name > ? AND name <> '' AND body IS NOT NULL ORDER BY name LIMIT ?`)
    this.#countNamed = db.prepare<[string], { n: number }>(
      `SELECT count(*) AS n FROM shadows WHERE thing = ? AND name <> '' AND body IS NOT NULL`)
    this.#pruneTombstones = db.prepare<[string, string, number]>(
      `DELETE FROM shadows WHERE thing = ? AND name <> '' AND body IS NULL AND name NOT IN (
         SELECT name FROM shadows WHERE thing = ? AND name <> '' AND body IS NULL ORDER BY updated_at DESC, name LIMIT ?)`)
  }

  get(thing: string, name: string): StoredShadow | undefined {
    const row = this.#get.get(thing, name)
    return row === undefined ? undefined : { body: row.body, version: row.version, updatedAt: row.updated_at }
  }

  /** Writes a live document (body) or a tombstone (body null). */
  put(thing: string, name: string, body: string | null, version: number, updatedAt: number): void {
    this.#put.run(thing, name, body, version, updatedAt)
  }

  /** Live named shadows of a thing, in name order, after `after` (exclusive). */
  listNamed(thing: string, after: string, limit: number): string[] {
    return this.#listNamed.all(thing, after, limit).map((r) => r.name)
  }

  /** Live named shadows of a thing. */
  countNamed(thing: string): number {
    return this.#countNamed.get(thing)?.n ?? 0
  }

  /**
   * Keeps the `keep` newest tombstones of a thing's named shadows and forgets the rest, so creating
   * and deleting names cannot grow the table; a forgotten name, re-created, starts at version 1.
   */
  pruneNamedTombstones(thing: string, keep: number): number {
    return this.#pruneTombstones.run(thing, thing, keep).changes
  }

  /** Runs `fn` in one transaction: one fsync for a whole batch of updates. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)()
  }
}
