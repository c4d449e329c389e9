import { migrate, type Db } from '../store/index.js'
import type { ShadowRef, ShadowState } from '../protocol/index.js'

/** What the last completed sync of one shadow left behind: the merge base of the next one. */
export interface SyncRecord {
  /** The state both sides held after the last sync; null when neither had the shadow. */
  base: ShadowState | null
  /** The local document's version after the last sync; null when it had none. */
  localVersion: number | null
  /** The cloud document's version as last seen (its reply to our get, or the echo of our write). */
  cloudVersion: number | null
  /** Clock ms of the last completed sync. */
  syncedAt: number
}

const MIGRATIONS = [
  `CREATE TABLE sync_shadows (
     thing TEXT NOT NULL,
     name TEXT NOT NULL,          -- '' is the classic shadow
     base TEXT,                   -- JSON {desired?, reported?}; NULL: absent on both sides
     local_version INTEGER,
     cloud_version INTEGER,
     synced_at INTEGER NOT NULL,
     PRIMARY KEY (thing, name)
   ) WITHOUT ROWID`,
]

interface Row {
  base: string | null
  local_version: number | null
  cloud_version: number | null
  synced_at: number
}

/**
 * Per-shadow sync records, in the coordinator's database (table family `sync`). A record is
 * written after both sides were written, so a crash in between leaves the old base, and the next
 * sync, finding the same changes again, makes the same writes (they are idempotent).
 */
export class SyncStore {
  readonly #get
  readonly #put
  readonly #cloudVersion

  constructor(db: Db) {
    migrate(db, 'sync', MIGRATIONS)
    this.#get = db.prepare<[string, string], Row>('SELECT base, local_version, cloud_version, synced_at FROM sync_shadows WHERE thing = ? AND name = ?')
    this.#put = db.prepare(`INSERT INTO sync_shadows (thing, name, base, local_version, cloud_version, synced_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (thing, name) DO UPDATE SET base = excluded.base, local_version = excluded.local_version,
        cloud_version = excluded.cloud_version, synced_at = excluded.synced_at`)
    this.#cloudVersion = db.prepare('UPDATE sync_shadows SET cloud_version = ? WHERE thing = ? AND name = ? AND (cloud_version IS NULL OR cloud_version < ?)')
  }

  get(ref: ShadowRef): SyncRecord | undefined {
    const row = this.#get.get(ref.thingName, ref.shadowName ?? '')
    if (row === undefined) return undefined
    return {
      base: row.base === null ? null : (JSON.parse(row.base) as ShadowState),
      localVersion: row.local_version,
      cloudVersion: row.cloud_version,
      syncedAt: row.synced_at,
    }
  }

  put(ref: ShadowRef, record: SyncRecord): void {
    const base = record.base === null ? null : JSON.stringify(record.base)
    this.#put.run(ref.thingName, ref.shadowName ?? '', base, record.localVersion, record.cloudVersion, record.syncedAt)
  }

  /** The cloud's version after one of our writes landed; a lower one (a late echo) is ignored. */
  noteCloudVersion(ref: ShadowRef, version: number): void {
    this.#cloudVersion.run(version, ref.thingName, ref.shadowName ?? '', version)
  }
}
