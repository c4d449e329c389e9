import { chmodSync, mkdirSync, statSync } from 'node:fs'
import type { Logger } from '../core/log.js'

/** The data directory holds the CA key, tokens and databases: owner-only. */
const DIR_MODE = 0o700

/** Creates the data directory 0700, or narrows one an older version (or a umask) left wider. */
export function prepareDataDir(dir: string, log: Logger): void {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE })
  const mode = statSync(dir).mode & 0o777
  if ((mode & 0o077) === 0) return
  chmodSync(dir, DIR_MODE)
  log.warn({ dir, was: mode.toString(8) }, 'the data directory was readable by others: made it owner-only (0700)')
}
