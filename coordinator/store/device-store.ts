import type { Db } from './db.js'
import { migrate } from './db.js'

/** A registered coordinated device. Credentials are kept as verifiers only (fingerprint, token hash). */
export interface DeviceRecord {
  name: string
  attributes: Record<string, string>
  policies: string[]
  /** SHA-256 fingerprint of the client certificate issued to it, or null for token-only devices. */
  certFingerprint: string | null
  /** scrypt hash of its token, or null when it has none. */
  tokenHash: string | null
  createdAt: number
}

const MIGRATIONS = [
  `CREATE TABLE devices (
     name TEXT PRIMARY KEY,
     attributes TEXT NOT NULL,
     policies TEXT NOT NULL,
     cert_fingerprint TEXT,
     token_hash TEXT,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
]

interface Row {
  name: string
  attributes: string
  policies: string
  cert_fingerprint: string | null
  token_hash: string | null
  created_at: number
}

const toRecord = (r: Row): DeviceRecord => ({
  name: r.name,
  attributes: JSON.parse(r.attributes) as Record<string, string>,
  policies: JSON.parse(r.policies) as string[],
  certFingerprint: r.cert_fingerprint,
  tokenHash: r.token_hash,
  createdAt: r.created_at,
})

/** The device registry, in the coordinator's SQLite file so the CLI and the daemon share it. */
export class DeviceStore {
  readonly #get
  readonly #list
  readonly #insert
  readonly #delete

  constructor(db: Db) {
    migrate(db, 'devices', MIGRATIONS)
    this.#get = db.prepare<[string], Row>('SELECT * FROM devices WHERE name = ?')
    this.#list = db.prepare<[], Row>('SELECT * FROM devices ORDER BY name')
    this.#insert = db.prepare(`INSERT INTO devices (name, attributes, policies, cert_fingerprint, token_hash, created_at)
      VALUES (@name, @attributes, @policies, @certFingerprint, @tokenHash, @createdAt)`)
    this.#delete = db.prepare('DELETE FROM devices WHERE name = ?')
  }

  get(name: string): DeviceRecord | undefined {
    const row = this.#get.get(name)
    return row === undefined ? undefined : toRecord(row)
  }

  list(): DeviceRecord[] {
    return this.#list.all().map(toRecord)
  }

  /** Returns false when a device of that name already exists. */
  add(rec: DeviceRecord): boolean {
    try {
      this.#insert.run({ ...rec, attributes: JSON.stringify(rec.attributes), policies: JSON.stringify(rec.policies) })
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
      throw err
    }
  }

  remove(name: string): boolean {
    return this.#delete.run(name).changes > 0
  }
}
