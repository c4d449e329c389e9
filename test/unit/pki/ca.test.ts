import { X509Certificate, createHash, createPrivateKey } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  certificateInfo,
  createCa,
  issueClientCert,
  issueServerCert,
  verifyIssuedBy,
  type KeyPairPem,
} from '../../../coordinator/pki/index.js'

const DAY_MS = 86_400_000
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'

let ca: KeyPairPem
let server: KeyPairPem
let client: KeyPairPem

beforeAll(async () => {
  ca = await createCa()
  server = await issueServerCert(ca, { hosts: ['localhost', '127.0.0.1', '::1', 'gw.local'] })
  client = await issueClientCert(ca, { thingName: 'sensor-01' })
})

/** Independent of certificateInfo: SHA-256 over the DER, formatted like node does. */
function sha256Fingerprint(certPem: string): string {
  const der = new X509Certificate(certPem).raw
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':')
}

function expectKeyMatches(pair: KeyPairPem): void {
  expect(pair.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
  const key = createPrivateKey(pair.keyPem)
  expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
  expect(new X509Certificate(pair.certPem).checkPrivateKey(key)).toBe(true)
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string }> {
  return p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e as { code?: string },
  )
}

describe('createCa', () => {
  it('makes a self-issued CA whose PKCS#8 P-256 key matches the certificate', () => {
    const info = certificateInfo(ca.certPem)
    expect(info.subjectCommonName).toBe('Edge Coordinator CA')
    expect(info.issuerCommonName).toBe('Edge Coordinator CA')
    expect(new X509Certificate(ca.certPem).ca).toBe(true)
    expect(verifyIssuedBy(ca.certPem, ca.certPem)).toBe(true)
    expectKeyMatches(ca)
  })

  it('honours commonName and validityDays, with notBefore a few minutes in the past', async () => {
    const before = Date.now()
    const info = certificateInfo((await createCa({ commonName: 'Barn 7 CA', validityDays: 30 })).certPem)
    expect(info.subjectCommonName).toBe('Barn 7 CA')
    expect(before - info.notBefore.getTime()).toBeGreaterThanOrEqual(4 * 60_000)
    expect(before - info.notBefore.getTime()).toBeLessThan(10 * 60_000)
    expect(Math.abs(info.notAfter.getTime() - (before + 30 * DAY_MS))).toBeLessThan(60_000)
  })

  it('defaults to about ten years of validity', () => {
    const info = certificateInfo(ca.certPem)
    expect(Math.round((info.notAfter.getTime() - Date.now()) / DAY_MS)).toBe(3650)
  })

  it('rejects a non-positive validity', async () => {
    expect((await rejection(createCa({ validityDays: 0 }))).code).toBe('COORD_INVALID_ARG')
  })
})

describe('issueServerCert', () => {
  it('uses the first host as CN and puts every host in the SANs with the right type', () => {
    const info = certificateInfo(server.certPem)
    expect(info.subjectCommonName).toBe('localhost')
    expect(info.issuerCommonName).toBe('Edge Coordinator CA')
    expect(info.sans).toEqual(['localhost', '127.0.0.1', '::1', 'gw.local'])
    expect(new X509Certificate(server.certPem).subjectAltName).toBe(
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:gw.local',
    )
  })

  it('is a non-CA serverAuth leaf that matches its key and only its hosts', () => {
    const cert = new X509Certificate(server.certPem)
    expect(cert.ca).toBe(false)
    expect(cert.keyUsage).toEqual([SERVER_AUTH])
    expect(cert.checkHost('localhost')).toBe('localhost')
    expect(cert.checkHost('gw.local')).toBe('gw.local')
    expect(cert.checkHost('example.com')).toBeUndefined()
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(cert.checkIP('::1')).toBe('::1')
    expect(cert.checkIP('127.0.0.2')).toBeUndefined()
    expectKeyMatches(server)
  })

  it('encodes IPv4-mapped IPv6 addresses as IP SANs', async () => {
    const cert = new X509Certificate((await issueServerCert(ca, { hosts: ['::ffff:10.0.0.7'] })).certPem)
    expect(cert.subjectAltName).toBe('IP Address:0:0:0:0:0:FFFF:A00:7')
    expect(cert.checkIP('::ffff:a00:7')).toBe('::ffff:a00:7')
  })

  it('defaults to 825 days of validity', () => {
    const info = certificateInfo(server.certPem)
    expect(Math.round((info.notAfter.getTime() - Date.now()) / DAY_MS)).toBe(825)
  })

  it.each([[[]], [['bad host']], [['fe80::1%eth0']], [['']]])('rejects hosts %j', async (hosts) => {
    expect((await rejection(issueServerCert(ca, { hosts }))).code).toBe('COORD_INVALID_ARG')
  })
})

describe('issueClientCert', () => {
  it('puts the thing name in the CN of a non-CA clientAuth leaf', () => {
    const cert = new X509Certificate(client.certPem)
    expect(certificateInfo(client.certPem).subjectCommonName).toBe('sensor-01')
    expect(certificateInfo(client.certPem).sans).toEqual([])
    expect(cert.ca).toBe(false)
    expect(cert.keyUsage).toEqual([CLIENT_AUTH])
    expectKeyMatches(client)
  })

  it('keeps thing names with DN metacharacters and non-ASCII verbatim', async () => {
    const thingName = 'pump,"7"+#=<ü>'
    expect(certificateInfo((await issueClientCert(ca, { thingName })).certPem).subjectCommonName).toBe(thingName)
  })

  it('rejects an empty thing name or one with control characters', async () => {
    expect((await rejection(issueClientCert(ca, { thingName: '' }))).code).toBe('COORD_INVALID_ARG')
    expect((await rejection(issueClientCert(ca, { thingName: 'a\nb' }))).code).toBe('COORD_INVALID_ARG')
  })

  it('refuses a CA pair whose key does not match, and a leaf posing as a CA', async () => {
    const other = await createCa()
    const mismatched = { certPem: ca.certPem, keyPem: other.keyPem }
    expect((await rejection(issueClientCert(mismatched, { thingName: 'x' }))).code).toBe('COORD_INVALID_ARG')
    expect((await rejection(issueClientCert(client, { thingName: 'x' }))).code).toBe('COORD_INVALID_ARG')
  })
})

describe('serial numbers', () => {
  it('are 16 random bytes, positive, and distinct', async () => {
    const more = await Promise.all([1, 2, 3].map((i) => issueClientCert(ca, { thingName: `t${i}` })))
    const serials = [ca, server, client, ...more].map((p) => certificateInfo(p.certPem).serialNumber)
    for (const serial of serials) expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/)
    expect(new Set(serials).size).toBe(serials.length)
  })
})

describe('certificateInfo', () => {
  it('reports the fingerprint as colon-separated SHA-256 of the DER', () => {
    const info = certificateInfo(client.certPem)
    expect(info.fingerprint256).toBe(sha256Fingerprint(client.certPem))
    expect(info.fingerprint256).toBe(new X509Certificate(client.certPem).fingerprint256)
  })

  it('reports validity dates that match the certificate', () => {
    const cert = new X509Certificate(client.certPem)
    const info = certificateInfo(client.certPem)
    expect(info.notBefore.getTime()).toBe(new Date(cert.validFrom).getTime())
    expect(info.notAfter.getTime()).toBe(new Date(cert.validTo).getTime())
  })

  it('throws a typed error for something that is not a certificate', () => {
    expect(() => certificateInfo('not a cert')).toThrow(expect.objectContaining({ code: 'COORD_INVALID_ARG' }))
  })
})

describe('verifyIssuedBy', () => {
  it('is true for certificates from this CA', () => {
    expect(verifyIssuedBy(server.certPem, ca.certPem)).toBe(true)
    expect(verifyIssuedBy(client.certPem, ca.certPem)).toBe(true)
  })

  it('is false for another CA, even one with the same name', async () => {
    const twin = await createCa()
    expect(certificateInfo(twin.certPem).subjectCommonName).toBe(certificateInfo(ca.certPem).subjectCommonName)
    expect(verifyIssuedBy(client.certPem, twin.certPem)).toBe(false)
    expect(verifyIssuedBy((await issueClientCert(twin, { thingName: 'sensor-01' })).certPem, ca.certPem)).toBe(false)
  })

  it('is false when the certificate is not the issuer, or when input does not parse', () => {
    expect(verifyIssuedBy(client.certPem, server.certPem)).toBe(false)
    expect(verifyIssuedBy('garbage', ca.certPem)).toBe(false)
    expect(verifyIssuedBy(client.certPem, 'garbage')).toBe(false)
  })
})
