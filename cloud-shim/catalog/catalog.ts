/**
 * The bundle catalog: every uploaded bundle version, checked on the way in and stored by digest.
 *
 * A bundle is decoded (size, envelope, signature over the content, manifest) and its signer
 * checked against the trusted keys before anything is written. Files live at
 * `<dataDir>/bundles/<digest>.bundle`, written to a temporary file, fsynced and renamed, so a file
 * under its final name is always complete. name@version is immutable: the same content again is
 * accepted (idempotent retries), different content under a taken name@version is a conflict.
 */
import type { Clock } from '../../coordinator/core/clock.js'
import { ConflictError } from '../../coordinator/core/errors.js'
import { K, type Logger } from '../../coordinator/core/log.js'
import { decodeBundle, parseManifest, verifyBundleTrust, type BundleError, type DecodedBundle, type TaskManifest, type TrustPolicy } from '../../coordinator/protocol/index.js'
import type { Db } from '../../coordinator/store/index.js'
// Deep import on purpose: the tasks module's index also loads the sandbox runtime (isolated-vm),
// which the cloud shim never runs. BundleFiles is pure file storage.
import { BundleFiles } from '../../coordinator/tasks/bundle-files.js'
import { CatalogStore, type BundleVersion } from './catalog-store.js'
import { compareVersions } from './semver.js'

export interface CatalogOptions {
  db: Db
  /** Where bundle files are kept (`<dataDir>/bundles`). */
  dir: string
  trust: TrustPolicy
  maxBundleBytes: number
  clock: Clock
  log: Logger
}

/** A bundle name with its newest version, for listings. */
export interface BundleSummary {
  name: string
  versions: number
  latest: BundleVersion
}

export interface UploadResult {
  bundle: BundleVersion
  /** False when this exact content was already catalogued under its name@version. */
  created: boolean
}

const byVersionDesc = (a: BundleVersion, b: BundleVersion): number => compareVersions(b.version, a.version)

export class Catalog {
  readonly #store: CatalogStore
  readonly #files: BundleFiles
  readonly #o: CatalogOptions

  constructor(opts: CatalogOptions) {
    this.#o = opts
    this.#store = new CatalogStore(opts.db)
    this.#files = new BundleFiles(opts.dir)
  }

  /** Throws the BundleError of a bad or untrusted bundle, or ConflictError for a taken name@version. */
  async upload(bytes: Uint8Array): Promise<UploadResult> {
    const bundle = this.#verify(bytes)
    const { name, version } = bundle.manifest
    const known = this.#existing(bundle)
    if (known !== undefined) return { bundle: known, created: false }
    await this.#files.write(bundle.digest, bytes)
    const entry: BundleVersion = {
      name, version, digest: bundle.digest, size: bytes.length, signer: bundle.signer?.keyId ?? null,
      requires: [...bundle.manifest.requires], description: bundle.manifest.description ?? null, uploadedAt: this.#o.clock.now(),
    }
    // Another upload of the same name@version may have won while the file was written.
    if (!this.#store.insert(entry, bundle.manifestText)) return { bundle: this.#existing(bundle) ?? entry, created: false }
    this.#o.log.info({ bundle: `${name}@${version}`, digest: bundle.digest, signer: entry.signer }, 'bundle catalogued')
    return { bundle: entry, created: true }
  }

  /** One entry per bundle name, in name order. */
  list(): BundleSummary[] {
    const byName = new Map<string, BundleVersion[]>()
    for (const v of this.#store.all()) byName.set(v.name, [...(byName.get(v.name) ?? []), v])
    return [...byName].map(([name, versions]) => ({ name, versions: versions.length, latest: versions.sort(byVersionDesc)[0] as BundleVersion }))
  }

  /** Newest first (semantic version order); empty for an unknown name. */
  versions(name: string): BundleVersion[] {
    return this.#store.byName(name).sort(byVersionDesc)
  }

  get(name: string, version: string): BundleVersion | undefined {
    return this.#store.get(name, version)
  }

  /** The validated manifest of name@version, e.g. to check a deployment's per-task config. */
  manifest(name: string, version: string): TaskManifest | undefined {
    const text = this.#store.manifestText(name, version)
    if (text === undefined) return undefined
    const parsed = parseManifest(JSON.parse(text))
    return parsed.ok ? parsed.manifest : undefined
  }

  /** The stored file of a catalogued digest, or undefined when no version has that digest. */
  file(digest: string): { path: string; versions: BundleVersion[] } | undefined {
    if (!/^[0-9a-f]{64}$/.test(digest)) return undefined
    const versions = this.#store.byDigest(digest)
    return versions.length === 0 ? undefined : { path: this.#files.path(digest), versions }
  }

  #verify(bytes: Uint8Array): DecodedBundle {
    const decoded = decodeBundle(bytes, { maxBytes: this.#o.maxBundleBytes })
    if (!decoded.ok) throw this.#refused(decoded.error)
    const untrusted = verifyBundleTrust(decoded.bundle, this.#o.trust)
    if (untrusted !== null) throw this.#refused(untrusted)
    return decoded.bundle
  }

  #refused(error: BundleError): BundleError {
    this.#o.log.warn({ code: error.code, [K.err]: error.message }, 'bundle upload refused')
    return error
  }

  /** The catalogued entry for this bundle's name@version if its content is the same; throws if not. */
  #existing(bundle: DecodedBundle): BundleVersion | undefined {
    const { name, version } = bundle.manifest
    const known = this.#store.get(name, version)
    if (known === undefined || known.digest === bundle.digest) return known
    throw new ConflictError(`${name}@${version} is already catalogued with digest ${known.digest}; this bundle's digest is ${bundle.digest} (publish a new version instead)`)
  }
}
