/**
 * The coordinator's own certificate authority: a self-signed ECDSA P-256 root that issues
 * TLS server certificates for the broker and client certificates for devices.
 *
 * P-256/SHA-256 is small and fast on a Raspberry Pi and accepted by Node TLS, mosquitto
 * and the AWS IoT device SDK. Everything runs on Node's WebCrypto; no openssl process.
 */
// tsyringe (used by @peculiar/x509) needs the Reflect metadata API loaded first.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { X509Certificate as NodeX509, createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import { InvalidArgumentError } from '../core/errors.js'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
type EcdsaParams = webcrypto.EcdsaParams

/** Passed explicitly to every @peculiar/x509 call rather than set on its global provider. */
const crypto = webcrypto
const EC_KEY: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' }
const SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' }
const DAY_MS = 86_400_000
/** Boards without an RTC can boot with a clock that lags the coordinator's. */
const CLOCK_SKEW_MS = 5 * 60_000

export interface KeyPairPem {
  certPem: string
  /** PKCS#8 PEM. */
  keyPem: string
}

export interface CaOptions {
  /** Default 'Edge Coordinator CA'. */
  commonName?: string
  /** Default 3650. */
  validityDays?: number
}

export interface ServerCertOptions {
  /** DNS names and IPv4/IPv6 addresses, each becoming a SAN of its type; CN is the first. */
  hosts: string[]
  /** Default 825 (the longest lifetime Apple platforms accept for TLS server certs). */
  validityDays?: number
}

export interface ClientCertOptions {
  /** Becomes the subject CN, which the broker maps to the device identity. */
  thingName: string
  /** Default 3650. */
  validityDays?: number
}

export interface CertInfo {
  subjectCommonName: string
  issuerCommonName: string
  /** Upper-case hex, as node's X509Certificate reports it. */
  serialNumber: string
  notBefore: Date
  notAfter: Date
  /** Upper-case hex, colon-separated, as node's X509Certificate reports it. */
  fingerprint256: string
  /** DNS and IP SAN values in certificate order; IPv6 in compressed form. */
  sans: string[]
}

export async function createCa(opts: CaOptions = {}): Promise<KeyPairPem> {
  const commonName = requireName(opts.commonName ?? 'Edge Coordinator CA', 'commonName')
  const keys = await generateKeys()
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      ...certBase(opts.validityDays ?? 3650),
      name: commonNameOf(commonName),
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  )
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) }
}

export async function issueServerCert(ca: KeyPairPem, opts: ServerCertOptions): Promise<KeyPairPem> {
  if (!Array.isArray(opts.hosts) || opts.hosts.length === 0) {
    throw new InvalidArgumentError('hosts must list at least one DNS name or IP address')
  }
  const sans = opts.hosts.map(toGeneralName)
  const commonName = opts.hosts[0] as string
  return issueLeaf(ca, commonName, opts.validityDays ?? 825, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(sans),
  ])
}

export async function issueClientCert(ca: KeyPairPem, opts: ClientCertOptions): Promise<KeyPairPem> {
  const commonName = requireName(opts.thingName, 'thingName')
  return issueLeaf(ca, commonName, opts.validityDays ?? 3650, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
  ])
}

export function certificateInfo(certPem: string): CertInfo {
  const node = parseNodeCert(certPem)
  const cert = new x509.X509Certificate(certPem)
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  return {
    subjectCommonName: cert.subjectName.getField('CN')[0] ?? '',
    issuerCommonName: cert.issuerName.getField('CN')[0] ?? '',
    serialNumber: node.serialNumber,
    notBefore: new Date(node.validFrom),
    notAfter: new Date(node.validTo),
    fingerprint256: node.fingerprint256,
    sans: san ? san.names.items.filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value) : [],
  }
}

/**
 * True when `caPem`'s key signed `certPem` and its subject is the cert's issuer.
 * A predicate: unparseable input is "not issued by", not an error. Validity dates are not checked.
 */
export function verifyIssuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new NodeX509(certPem)
    const ca = new NodeX509(caPem)
    return cert.checkIssued(ca) && cert.verify(ca.publicKey)
  } catch {
    return false
  }
}

async function issueLeaf(ca: KeyPairPem, commonName: string, validityDays: number, extra: x509.Extension[]): Promise<KeyPairPem> {
  const base = certBase(validityDays)
  const issuer = await loadCa(ca)
  const keys = await generateKeys()
  const cert = await x509.X509CertificateGenerator.create(
    {
      ...base,
      subject: commonNameOf(commonName),
      issuer: issuer.cert.subjectName,
      publicKey: keys.publicKey,
      signingKey: issuer.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        ...extra,
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await authorityKeyId(issuer.cert),
      ],
    },
    crypto,
  )
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) }
}

/** Parses the CA pair and checks it can sign, so a mismatched pair fails here, not at a device. */
async function loadCa(ca: KeyPairPem): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const node = parseNodeCert(ca.certPem)
  if (!node.ca) throw new InvalidArgumentError('the CA certificate is not a CA (basicConstraints CA:false)')
  let privateKey
  try {
    privateKey = createPrivateKey(ca.keyPem)
  } catch (e) {
    throw new InvalidArgumentError('the CA key is not a readable private key PEM', { cause: e })
  }
  if (privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InvalidArgumentError('the CA key must be an ECDSA P-256 key')
  }
  if (!node.checkPrivateKey(privateKey)) throw new InvalidArgumentError('the CA key does not match the CA certificate')
  const der = privateKey.export({ type: 'pkcs8', format: 'der' })
  const key = await crypto.subtle.importKey('pkcs8', der, EC_KEY, false, ['sign'])
  return { cert: new x509.X509Certificate(ca.certPem), key }
}

/** Reuses the CA's own subjectKeyIdentifier so chain builders can match the two exactly. */
async function authorityKeyId(caCert: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension)
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId)
  return x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto)
}

function certBase(validityDays: number): { serialNumber: string; notBefore: Date; notAfter: Date; signingAlgorithm: EcdsaParams } {
  if (!Number.isFinite(validityDays) || validityDays <= 0) {
    throw new InvalidArgumentError(`validityDays must be a positive number, got ${validityDays}`)
  }
  const now = Date.now()
  return {
    serialNumber: randomSerial(),
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    signingAlgorithm: SIGNING,
  }
}

/** 16 random bytes with the top bit cleared and the next set: positive, and always exactly 16 bytes in DER. */
function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40
  return bytes.toString('hex')
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

/** Built as UTF8String explicitly: the string/JSON name forms reinterpret quotes and a leading '#'. */
function commonNameOf(commonName: string): x509.Name {
  return new x509.Name([{ CN: [{ utf8String: commonName }] }])
}

function requireName(value: unknown, field: string): string {
  // Control characters would make the subject ambiguous in logs and in openssl's one-line form.
  if (typeof value !== 'string' || value.length === 0 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidArgumentError(`${field} must be a non-empty string without control characters`)
  }
  return value
}

const DNS_NAME = /^(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

function toGeneralName(host: string): x509.JsonGeneralName {
  if (isIP(host) === 4) return { type: 'ip', value: host }
  if (isIP(host) === 6) return { type: 'ip', value: canonicalIPv6(host) }
  if (typeof host === 'string' && DNS_NAME.test(host)) return { type: 'dns', value: host.toLowerCase() }
  throw new InvalidArgumentError(`host ${JSON.stringify(host)} is neither an IP address nor a DNS name`)
}

/**
 * The SAN encoder cannot parse an embedded IPv4 tail ('::ffff:1.2.3.4'); the WHATWG URL
 * serializer rewrites any IPv6 to plain hex groups. Zone ids ('%eth0') make URL throw,
 * which is right: a scope id has no meaning in a certificate.
 */
function canonicalIPv6(host: string): string {
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1)
  } catch {
    throw new InvalidArgumentError(`host ${JSON.stringify(host)} is not an IPv6 address usable in a certificate`)
  }
}

function parseNodeCert(certPem: string): NodeX509 {
  try {
    return new NodeX509(certPem)
  } catch (e) {
    throw new InvalidArgumentError('not a readable X.509 certificate PEM', { cause: e })
  }
}
