/**
 * Where swarm devices get their credentials: a token file (one `THING_NAME TOKEN` per line, as an
 * operator collects them from `devices add NAME --token`), a directory of per-device certificates
 * laid out as `devices add` writes them (`DIR/NAME/{cert,key,ca}.pem`), or none (anonymous, which
 * the coordinator allows on loopback in development).
 */
import { join } from 'node:path'
import type { DeviceOptions } from '../sdk/index.js'

export type Credentials = Pick<DeviceOptions, 'cert' | 'key' | 'ca' | 'token'>

/** Parses a token file; `#` starts a comment, blank lines are skipped. */
export function parseTokenFile(text: string): Map<string, string> {
  const tokens = new Map<string, string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') return
    const fields = line.split(/\s+/)
    if (fields.length !== 2) throw new Error(`token file line ${i + 1}: expected "THING_NAME TOKEN", got ${fields.length} field(s)`)
    tokens.set(fields[0] as string, fields[1] as string)
  })
  return tokens
}

export interface CredentialSource {
  tokens?: Map<string, string>
  certDir?: string
}

/**
 * Credentials for each name, checked for every name up front so a missing token fails at start-up
 * rather than as one refused device among hundreds.
 */
export function credentialsFor(names: readonly string[], source: CredentialSource): (name: string) => Credentials {
  const { tokens, certDir } = source
  const missing = tokens === undefined ? [] : names.filter((n) => !tokens.has(n))
  if (missing.length > 0) throw new Error(`token file has no token for ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`)
  return (name) => {
    const creds: Credentials = {}
    const token = tokens?.get(name)
    if (token !== undefined) creds.token = token
    if (certDir !== undefined) Object.assign(creds, { cert: join(certDir, name, 'cert.pem'), key: join(certDir, name, 'key.pem'), ca: join(certDir, name, 'ca.pem') })
    return creds
  }
}
