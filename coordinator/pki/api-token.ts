import { randomBytes } from 'node:crypto'
import { chmodSync, readFileSync, statSync } from 'node:fs'
import { SECRET_MODE, writeFileAtomic } from '../core/atomic-file.js'
import { ConfigError } from '../core/errors.js'
import type { Logger } from '../core/log.js'

/**
 * The bearer token non-loopback HTTP API callers must present (`<dataDir>/api-token`): created
 * once, owner-read-only. An empty or whitespace-only file would make an empty token match an empty
 * `Bearer ` header, so it is replaced by a fresh token (and logged), never accepted.
 */
export function ensureApiToken(file: string, log: Logger): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOENT') throw new ConfigError(`cannot read the API token file ${file}: ${code ?? (err as Error).message}; fix its owner or permissions, or remove it to have a new token created`)
    return writeToken(file)
  }
  const token = text.trim()
  if (token === '') {
    log.warn({ file }, 'the API token file was empty: wrote a new token')
    return writeToken(file)
  }
  if ((statSync(file).mode & 0o077) !== 0) {
    chmodSync(file, SECRET_MODE)
    log.warn({ file }, 'the API token file was readable by others: made it owner-only (0600)')
  }
  return token
}

function writeToken(file: string): string {
  const token = randomBytes(32).toString('base64url')
  writeFileAtomic(file, `${token}\n`)
  return token
}
