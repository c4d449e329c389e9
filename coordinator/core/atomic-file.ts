import { randomBytes } from 'node:crypto'
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** Owner read/write only: keys, tokens, join files. */
export const SECRET_MODE = 0o600

/**
 * Writes `data` to `path` so that a reader (or a power cut) sees the old file or the whole new
 * one, never half of it, and never with a wider mode than `mode`: a temporary sibling is created
 * with the mode from its first byte, fsynced, renamed over `path`, and the directory fsynced.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number = SECRET_MODE): void {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const fd = openSync(temp, 'wx', mode)
    try {
      // The umask can only narrow the mode; this makes it exact.
      fchmodSync(fd, mode)
      const bytes = typeof data === 'string' ? Buffer.from(data) : data
      for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
  } catch (err) {
    rmSync(temp, { force: true })
    throw err
  }
  syncDirectory(dirname(path))
}

/** The rename is durable only once the directory entry is on disk. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
