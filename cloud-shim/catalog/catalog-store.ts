import { migrate, type Db } from '../../coordinator/store/index.js'

/** One uploaded version of a bundle, as the catalog lists it. */
export interface BundleVersion {
  name: string
  version: string
  /** SHA-256 hex content address; also the download path and ETag. */
  digest: string
  /** Bytes of the stored file. */
  size: number
  /** Key id of the Ed25519 signer; null for an unsigned bundle (allowed in development only). */
  signer: string | null
  /** Capability tags a coordinator must carry to run it (the manifest's `requires`). */
  requires: string[]
  description: string | null
  uploadedAt: number
}

const MIGRATIONS = [
  `CREATE TABLE catalog_bundles (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     digest TEXT NOT NULL,
     size INTEGER NOT NULL,
     signer TEXT,
     requires TEXT NOT NULL,        -- JSON array
     description TEXT,
     manifest TEXT NOT NULL,        -- the manifest JSON text as signed
     uploaded_at INTEGER NOT NULL,
     PRIMARY KEY (name, version)
   ) WITHOUT ROWID;
   CREATE INDEX catalog_bundles_by_digest ON catalog_bundles (digest);`,
]

interface Row {
  name: string
  version: string
  digest: string
  size: number
  signer: string | null
  requires: string
  description: string | null
  uploaded_at: number
}

const COLUMNS = 'name, version, digest, size, signer, requires, description, uploaded_at'

const toVersion = (r: Row): BundleVersion => ({
  name: r.name, version: r.version, digest: r.digest, size: r.size, signer: r.signer,
  requires: JSON.parse(r.requires) as string[], description: r.description, uploadedAt: r.uploaded_at,
})

export class CatalogStore {
  readonly #sql

  constructor(db: Db) {
    migrate(db, 'catalog', MIGRATIONS)
    this.#sql = {
      get: db.prepare<[string, string], Row>(`SELECT ${COLUMNS} FROM catalog_bundles WHERE name = ? AND version = ?`),
      byName: db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM catalog_bundles WHERE name = ?`),
      byDigest: db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM catalog_bundles WHERE digest = ? ORDER BY name, version`),
      all: db.prepare<[], Row>(`SELECT ${COLUMNS} FROM catalog_bundles ORDER BY name`),
      manifest: db.prepare<[string, string], { manifest: string }>('SELECT manifest FROM catalog_bundles WHERE name = ? AND version = ?'),
      insert: db.prepare(`INSERT INTO catalog_bundles (${COLUMNS}, manifest)
        VALUES (@name, @version, @digest, @size, @signer, @requires, @description, @uploadedAt, @manifest)`),
    }
  }

  get(name: string, version: string): BundleVersion | undefined {
    const r = this.#sql.get.get(name, version)
    return r === undefined ? undefined : toVersion(r)
  }

  byName(name: string): BundleVersion[] {
    return this.#sql.byName.all(name).map(toVersion)
  }

  byDigest(digest: string): BundleVersion[] {
    return this.#sql.byDigest.all(digest).map(toVersion)
  }

  all(): BundleVersion[] {
    return this.#sql.all.all().map(toVersion)
  }

  manifestText(name: string, version: string): string | undefined {
    return this.#sql.manifest.get(name, version)?.manifest
  }

  /** False when name@version is already taken (by whatever digest). */
  insert(v: BundleVersion, manifestText: string): boolean {
    try {
      this.#sql.insert.run({ ...v, requires: JSON.stringify(v.requires), manifest: manifestText })
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
      throw err
    }
  }
}
