import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCa, issueClientCert, issueServerCert, type KeyPairPem } from '../../../coordinator/pki/index.js'

/** OpenSSL's command line is an independent implementation to check our certificates against. */
const hasOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0
const suite = hasOpenssl ? 'openssl as an independent verifier' : 'openssl as an independent verifier (skipped: openssl is not on PATH)'

let dir: string
const files: Record<'ca' | 'server' | 'client' | 'rogue' | 'serverKey' | 'clientKey', string> = {
  ca: '',
  server: '',
  client: '',
  rogue: '',
  serverKey: '',
  clientKey: '',
}

function write(name: keyof typeof files, pem: string): void {
  files[name] = join(dir, `${name}.pem`)
  writeFileSync(files[name], pem)
}

function openssl(...args: string[]): { status: number | null; out: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' })
  return { status: result.status, out: `${result.stdout}${result.stderr}` }
}

/** `openssl verify` with strict RFC 5280 checks (AKI/SKI present, CA marked critical, ...). */
const verify = (purpose: string, cert: string) =>
  openssl('verify', '-x509_strict', '-purpose', purpose, '-CAfile', files.ca, cert)

beforeAll(async () => {
  if (!hasOpenssl) return
  dir = mkdtempSync(join(tmpdir(), 'pki-openssl-'))
  const ca = await createCa()
  const server: KeyPairPem = await issueServerCert(ca, { hosts: ['localhost', '127.0.0.1', '::1'] })
  const client = await issueClientCert(ca, { thingName: 'sensor-01' })
  write('ca', ca.certPem)
  write('server', server.certPem)
  write('serverKey', server.keyPem)
  write('client', client.certPem)
  write('clientKey', client.keyPem)
  write('rogue', (await issueClientCert(await createCa(), { thingName: 'sensor-01' })).certPem)
})

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe(suite, () => {
  it.skipIf(!hasOpenssl)('verifies the server certificate for sslserver and the client for sslclient', () => {
    expect(verify('sslserver', files.server)).toEqual({ status: 0, out: `${files.server}: OK\n` })
    expect(verify('sslclient', files.client)).toEqual({ status: 0, out: `${files.client}: OK\n` })
  })

  // Matched on X509_V_ERR numbers: the message wording differs between OpenSSL releases.
  it.skipIf(!hasOpenssl)('refuses each leaf for the other purpose (error 26), and a leaf from another CA (error 20)', () => {
    expect(verify('sslclient', files.server)).toMatchObject({ status: 2, out: expect.stringMatching(/error 26 at 0 depth/) })
    expect(verify('sslserver', files.client)).toMatchObject({ status: 2, out: expect.stringMatching(/error 26 at 0 depth/) })
    expect(verify('sslclient', files.rogue)).toMatchObject({ status: 2, out: expect.stringMatching(/error 20 at 0 depth/) })
  })

  it.skipIf(!hasOpenssl)('reads the CA extensions as specified', () => {
    const { status, out } = openssl('x509', '-in', files.ca, '-noout', '-ext', 'basicConstraints,keyUsage,subjectKeyIdentifier')
    expect(status).toBe(0)
    expect(out).toMatch(/Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/)
    expect(out).toMatch(/Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/)
    expect(out).toMatch(/Subject Key Identifier/)
  })

  it.skipIf(!hasOpenssl)('reads the server leaf extensions, SANs and signature algorithm as specified', () => {
    const { status, out } = openssl('x509', '-in', files.server, '-noout', '-text')
    expect(status).toBe(0)
    expect(out).toMatch(/Signature Algorithm: ecdsa-with-SHA256/)
    expect(out).toMatch(/ASN1 OID: prime256v1/)
    expect(out).toMatch(/Basic Constraints: critical\n\s+CA:FALSE/)
    expect(out).toMatch(/Key Usage: critical\n\s+Digital Signature\n/)
    expect(out).toMatch(/Extended Key Usage: \n\s+TLS Web Server Authentication\n/)
    expect(out).toMatch(/DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n/)
    expect(out).toMatch(/Authority Key Identifier/)
  })

  it.skipIf(!hasOpenssl)('reads the private keys as PKCS#8 EC keys that match their certificates', () => {
    for (const [cert, key] of [
      [files.server, files.serverKey],
      [files.client, files.clientKey],
    ] as const) {
      const fromKey = openssl('pkey', '-in', key, '-pubout')
      const fromCert = openssl('x509', '-in', cert, '-noout', '-pubkey')
      expect(fromKey.status).toBe(0)
      expect(fromKey.out).toBe(fromCert.out)
    }
  })
})
