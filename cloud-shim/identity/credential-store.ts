import { migrate, type Db } from '../../coordinator/store/index.js'

/** How a coordinator proves who it is; verifiers only, as the coordinator's DeviceStore keeps them. */
export interface CoordinatorCredential {
  name: string
  /** SHA-256 fingerprint of the client certificate issued to it; null for token-only coordinators. */
  certFingerprint: string | null
  /** scrypt hash of its token, or null when it has none. */
  tokenHash: string | null
  createdAt: number
}

const MIGRATIONS = [
  // CASCADE: removing the coordinator's thing revokes its credentials, whichever process does it.
  `CREATE TABLE coordinators (
     name TEXT PRIMARY KEY REFERENCES registry_things (name) ON DELETE CASCADE,
     cert_fingerprint TEXT,
     token_hash TEXT,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
]

interface Row {
  name: string
  cert_fingerprint: string | null
  token_hash: string | null
  created_at: number
}

/** The `coordinators` table in cloud.db; its rows hang off the registry's things. */
export class CredentialStore {
  readonly #get
  readonly #insert

  constructor(db: Db) {
    migrate(db, 'coordinators', MIGRATIONS)
    this.#get = db.prepare<[string], Row>('SELECT * FROM coordinators WHERE name = ?')
    this.#insert = db.prepare(`INSERT INTO coordinators (name, cert_fingerprint, token_hash, created_at)
      VALUES (@name, @certFingerprint, @tokenHash, @createdAt)`)
  }

  get(name: string): CoordinatorCredential | undefined {
    const r = this.#get.get(name)
    return r === undefined ? undefined : { name: r.name, certFingerprint: r.cert_fingerprint, tokenHash: r.token_hash, createdAt: r.created_at }
  }

  add(credential: CoordinatorCredential): void {
    this.#insert.run(credential)
  }
}
