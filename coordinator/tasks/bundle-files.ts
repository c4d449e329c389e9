import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const SUFFIX = '.bundle'
/** Digests come from our own decoder; the pattern only guards the path against '/' and '..'. */
const SAFE_DIGEST = /^[a-zA-Z0-9:_-]{8,160}$/

/**
 * Bundle files named by their digest. A file is written to a temporary name, fsynced, renamed and
 * the directory fsynced, so after a crash a `<digest>.bundle` is either absent or complete.
 */
export class BundleFiles {
  readonly #dir: string

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true })
    this.#dir = dir
  }

  path(digest: string): string {
    assert.match(digest, SAFE_DIGEST, 'bundle digest has unexpected characters')
    return join(this.#dir, `${digest}${SUFFIX}`)
  }

  /** Same digest, same bytes: an existing file is reused. */
  async write(digest: string, bytes: Uint8Array): Promise<void> {
    const target = this.path(digest)
    if (await exists(target)) return
    const temp = join(this.#dir, `.${digest}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      await writeSynced(temp, bytes)
      await rename(temp, target)
    } finally {
      await rm(temp, { force: true })
    }
    await fsyncDir(this.#dir)
  }

  async read(digest: string): Promise<Uint8Array> {
    return readFile(this.path(digest))
  }

  /**
   * Deletes bundle files whose digest is not in `keep`; returns their names. The caller includes
   * the digests of installs still in progress, whose rows are not written yet.
   */
  prune(keep: ReadonlySet<string>): Promise<string[]> {
    return this.#removeWhere((file) => file.endsWith(SUFFIX) && !keep.has(file.slice(0, -SUFFIX.length)))
  }

  /** Temporaries left by a crash mid-write; only safe while no install runs, i.e. at start. */
  removeTemporaries(): Promise<string[]> {
    return this.#removeWhere((file) => file.endsWith('.tmp'))
  }

  async #removeWhere(stale: (file: string) => boolean): Promise<string[]> {
    const removed: string[] = []
    for (const file of await readdir(this.#dir)) {
      if (!stale(file)) continue
      await rm(join(this.#dir, file), { force: true })
      removed.push(file)
    }
    return removed
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch {
    return false
  }
}

async function writeSynced(file: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(file, 'wx', 0o644)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Makes the rename itself durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
