import { join } from 'node:path'
import Database from 'better-sqlite3'
import { CoordinatorError } from '../core/errors.js'

/** Another daemon holds the data directory: starting too would interleave two writers' state. */
export class DataDirInUseError extends CoordinatorError {
  readonly code = 'COORD_DATA_DIR_IN_USE' as const
  constructor(readonly dataDir: string, readonly holder: string) {
    super(`data dir ${dataDir} is in use by ${holder}; stop it first, or start with another --data-dir`)
  }
}

export interface DaemonLock {
  release(): void
}

/** "pid 1234 (mqtt 127.0.0.1:1883, http 127.0.0.1:8087)": a running daemon as its endpoints file describes it. */
export function describeHolder(pid: number, endpoints: Readonly<Record<string, { host: string; port: number } | undefined>>): string {
  const listening = Object.entries(endpoints).flatMap(([name, a]) => (a === undefined ? [] : [`${name} ${a.host}:${a.port}`]))
  return `pid ${pid}${listening.length > 0 ? ` (${listening.join(', ')})` : ''}`
}

export const daemonLockFile = (dataDir: string): string => join(dataDir, 'daemon.lock')

/**
 * Holds an exclusive SQLite lock on `<dataDir>/daemon.lock` for the daemon's lifetime. SQLite's
 * POSIX locks belong to the process, so the kernel drops them on a crash or kill -9: unlike a pid
 * file, nothing stale is left behind. `describeHolder` names the running daemon in the refusal.
 */
export function acquireDaemonLock(dataDir: string, describeHolder: () => string): DaemonLock {
  const db = new Database(daemonLockFile(dataDir))
  try {
    db.pragma('busy_timeout = 0')
    db.pragma('locking_mode = EXCLUSIVE')
    // In exclusive locking mode the first write's lock is kept until the connection closes.
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (at INTEGER); COMMIT')
  } catch (err) {
    db.close()
    const code = (err as { code?: unknown }).code
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new DataDirInUseError(dataDir, describeHolder())
    throw err
  }
  return { release: () => db.close() }
}
