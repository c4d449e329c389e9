import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { writeFileAtomic } from '../core/atomic-file.js'
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

export const caExists = (files: CaFiles): boolean => existsSync(files.caCert) && existsSync(files.caKey)

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

/** Creates the CA (unless it exists) and a fresh server certificate for `hosts`. */
export async function initCa(files: CaFiles, hosts: readonly string[]): Promise<{ createdCa: boolean }> {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 })
  const createdCa = !caExists(files)
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
  return { createdCa }
}
