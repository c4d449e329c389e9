import { X509Certificate, createPrivateKey } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { writeFileAtomic } from '../core/atomic-file.js'
import { CoordinatorError } from '../core/errors.js'
import type { KeyPairPem } from './ca.js'

/** Certificates are public; keys are not. */
const PUBLIC_MODE = 0o644

/** The CA and server credentials under `<dataDir>/pki`. Keys are written atomically, owner-read-only. */
export interface CaFiles {
  dir: string
  caCert: string
  caKey: string
  serverCert: string
  serverKey: string
}

export function caFiles(dataDir: string): CaFiles {
  const dir = join(dataDir, 'pki')
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  }
}

/**
 * Every device certificate hangs off this CA: replacing it without being asked would lock every
 * device out. So a CA that is half there or damaged stops the daemon, naming the file and the ways out.
 */
export class CaUnusableError extends CoordinatorError {
  readonly code = 'COORD_CA_UNUSABLE' as const
  constructor(readonly file: string, problem: string) {
    super(
      `the CA is unusable: ${file} ${problem}. Restore it from a backup, or run \`certs init --force\` to ` +
        'issue a new CA (the old pki/ is kept aside; everything it issued credentials to, devices or coordinators, then needs new ones)',
    )
  }
}

/** True when a usable CA is there, false when there is none yet; throws CaUnusableError for anything in between. */
export function checkCa(files: CaFiles): boolean {
  const hasCert = existsSync(files.caCert)
  const hasKey = existsSync(files.caKey)
  if (!hasCert && !hasKey) return false
  if (!hasCert) throw new CaUnusableError(files.caCert, 'is missing (its key is there)')
  if (!hasKey) throw new CaUnusableError(files.caKey, 'is missing (its certificate is there)')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(readFileSync(files.caCert))
  } catch {
    throw new CaUnusableError(files.caCert, 'is not a PEM certificate')
  }
  let matches: boolean
  try {
    matches = cert.checkPrivateKey(createPrivateKey(readFileSync(files.caKey)))
  } catch {
    throw new CaUnusableError(files.caKey, 'is not a PEM private key')
  }
  if (!matches) throw new CaUnusableError(files.caKey, `does not belong to the certificate in ${files.caCert}`)
  return true
}

export function readCa(files: CaFiles): KeyPairPem {
  return { certPem: readFileSync(files.caCert, 'utf8'), keyPem: readFileSync(files.caKey, 'utf8') }
}

export function readServer(files: CaFiles): KeyPairPem {
  return { certPem: readFileSync(files.serverCert, 'utf8'), keyPem: readFileSync(files.serverKey, 'utf8') }
}

/** Host names and addresses a server certificate should carry by default. */
export function defaultServerHosts(extra: readonly string[]): string[] {
  const wildcard = new Set(['0.0.0.0', '::'])
  return [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extra.filter((h) => !wildcard.has(h))])]
}

/**
 * Creates the CA (unless a usable one exists) and a fresh server certificate for `hosts`. With
 * `force`, a new CA replaces the old, whose whole pki/ directory is moved aside (`replaced`), not deleted.
 */
export async function initCa(files: CaFiles, hosts: readonly string[], opts: { force?: boolean } = {}): Promise<{ createdCa: boolean; replaced?: string }> {
  let replaced: string | undefined
  if (opts.force === true && existsSync(files.dir)) {
    replaced = `${files.dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`
    renameSync(files.dir, replaced)
  }
  mkdirSync(files.dir, { recursive: true, mode: 0o700 })
  const createdCa = !checkCa(files)
  // Loaded on demand: the X.509 library is large and a running daemon needs it only on first start.
  const { createCa, issueServerCert } = await import('./ca.js')
  if (createdCa) {
    const ca = await createCa()
    writeFileAtomic(files.caKey, ca.keyPem)
    writeFileAtomic(files.caCert, ca.certPem, PUBLIC_MODE)
  }
  const server = await issueServerCert(readCa(files), { hosts: [...hosts] })
  writeFileAtomic(files.serverKey, server.keyPem)
  writeFileAtomic(files.serverCert, server.certPem, PUBLIC_MODE)
  return replaced === undefined ? { createdCa } : { createdCa, replaced }
}
