/**
 * The task bundle file: one CBOR map holding the manifest JSON text, the task's code packed into one
 * JavaScript file, and an optional Ed25519 signature.
 *
 * The digest (the bundle's content address) covers the manifest text and the code, not the
 * signature, so signing or re-signing a bundle keeps its address; the signature is over the digest.
 * Pure functions over bytes: every failure comes back as a BundleError with a code, never as a raw
 * decoder or crypto exception, because bundles arrive from outside (the local API, the cloud).
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { Encoder } from 'cbor-x'
import { CoordinatorError, InvalidArgumentError, type CoordinatorErrorOptions } from '../core/errors.js'
import { parseManifest, type TaskManifest } from './manifest.js'

export const BUNDLE_FORMAT = 'edge-task-bundle'
export const BUNDLE_FORMAT_VERSION = 1

export type BundleErrorCode =
  | 'COORD_BUNDLE_TOO_LARGE'
  | 'COORD_BUNDLE_MALFORMED'
  | 'COORD_BUNDLE_MANIFEST_INVALID'
  | 'COORD_BUNDLE_SIGNATURE_INVALID'
  | 'COORD_BUNDLE_UNSIGNED'
  | 'COORD_BUNDLE_UNTRUSTED'
  | 'COORD_BUNDLE_DIGEST_MISMATCH'

export interface BundleErrorOptions extends CoordinatorErrorOptions {
  /** COORD_BUNDLE_MANIFEST_INVALID: one line per manifest error (also in the message). */
  errors?: readonly string[]
}

export class BundleError extends CoordinatorError {
  readonly code: BundleErrorCode
  readonly errors: readonly string[]

  constructor(code: BundleErrorCode, message: string, options: BundleErrorOptions = {}) {
    super(message, options)
    this.code = code
    this.errors = options.errors ?? []
  }
}

/** As stored in the file. */
export interface BundleSignature {
  algorithm: 'ed25519'
  /** SPKI DER, base64. */
  publicKey: string
  /** Ed25519 signature of the 32 raw digest bytes, base64. */
  value: string
}

export interface BundleContent {
  manifestText: string
  code: string
}

export interface BundleSigner {
  /** First 16 hex characters of SHA-256 over the SPKI DER of the public key. */
  keyId: string
  publicKeyPem: string
}

export interface DecodedBundle extends BundleContent {
  manifest: TaskManifest
  /** SHA-256 hex of the content address. */
  digest: string
  /** Present when signed; the signature has been checked against the content. */
  signer?: BundleSigner
}

export type DecodeResult = { ok: true; bundle: DecodedBundle } | { ok: false; error: BundleError }

export interface TrustPolicy {
  /** Ed25519 public keys, PEM. */
  trustedKeys: readonly string[]
  allowUnsigned: boolean
}

/** Plain maps, no cbor-x records: other CBOR implementations must read the file. */
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })

const ENVELOPE_KEYS = new Set(['format', 'formatVersion', 'manifest', 'code', 'signature'])
const SIGNATURE_KEYS = new Set(['algorithm', 'publicKey', 'value'])
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * SHA-256 hex of the CBOR array [1, manifestText, code]. cbor-x writes an array of an integer and
 * two text strings with minimal-length heads, which is RFC 8949 §4.2.1 deterministic encoding,
 * so any CBOR implementation computes the same address.
 */
export function bundleDigest(content: BundleContent): string {
  return createHash('sha256').update(cbor.encode([BUNDLE_FORMAT_VERSION, content.manifestText, content.code])).digest('hex')
}

/** Accepts a public key PEM, a private key PEM (its public half) or SPKI DER bytes. */
export function keyId(publicKey: string | Uint8Array): string {
  return keyIdOf(publicKeyFrom(publicKey))
}

const keyIdOf = (key: KeyObject): string => createHash('sha256').update(spkiDer(key)).digest('hex').slice(0, 16)

/** Throws a BundleError (MANIFEST_INVALID) rather than produce a bundle no coordinator would take. */
export function encodeBundle(content: BundleContent, signer?: { privateKeyPem: string }): Uint8Array {
  assertManifestValid(content.manifestText)
  const envelope: Record<string, unknown> = {
    format: BUNDLE_FORMAT, formatVersion: BUNDLE_FORMAT_VERSION, manifest: content.manifestText, code: content.code,
  }
  if (signer !== undefined) envelope['signature'] = signatureFor(bundleDigest(content), signer.privateKeyPem)
  return new Uint8Array(cbor.encode(envelope))
}

/**
 * Signs (or re-signs) a bundle file. The file is fully decoded first, its current signature
 * included, so a damaged or tampered file is refused instead of being vouched for.
 */
export function signBundle(bytes: Uint8Array, privateKeyPem: string): Uint8Array {
  const decoded = decodeBundle(bytes, { maxBytes: Number.MAX_SAFE_INTEGER })
  if (!decoded.ok) throw decoded.error
  return encodeBundle(decoded.bundle, { privateKeyPem })
}

/** Decodes and checks a bundle file: size, envelope, signature (tamper check), then the manifest. */
export function decodeBundle(bytes: Uint8Array, opts: { maxBytes: number }): DecodeResult {
  if (bytes.length > opts.maxBytes) {
    return { ok: false, error: new BundleError('COORD_BUNDLE_TOO_LARGE', `bundle is ${bytes.length} bytes, more than the limit of ${opts.maxBytes}`) }
  }
  const envelope = readEnvelope(bytes)
  if (envelope instanceof BundleError) return { ok: false, error: envelope }
  const content = { manifestText: envelope.manifestText, code: envelope.code }
  const digest = bundleDigest(content)
  let signer: BundleSigner | undefined
  if (envelope.signature !== undefined) {
    const checked = checkSignature(envelope.signature, digest)
    if (checked instanceof BundleError) return { ok: false, error: checked }
    signer = checked
  }
  const manifest = parseManifestText(envelope.manifestText)
  if (manifest instanceof BundleError) return { ok: false, error: manifest }
  return { ok: true, bundle: { ...content, manifest, digest, ...(signer === undefined ? {} : { signer }) } }
}

/**
 * Whether a decoded bundle may be installed. `allowUnsigned` admits bundles with no signature
 * only: a signature by a key that is not trusted still refuses, since it names someone else.
 */
export function verifyBundleTrust(decoded: DecodedBundle, trust: TrustPolicy): BundleError | null {
  if (decoded.signer === undefined) {
    return trust.allowUnsigned ? null : new BundleError('COORD_BUNDLE_UNSIGNED', 'bundle is not signed and unsigned bundles are not allowed (sign it with `edge-task sign`)')
  }
  const id = decoded.signer.keyId
  if (trust.trustedKeys.some((pem) => keyIdOrUndefined(pem) === id)) return null
  return new BundleError('COORD_BUNDLE_UNTRUSTED', `bundle is signed by key ${id}, which is not a trusted key (add its public key to tasks.trustedKeys)`)
}

/** For deployments, which name the digest they expect: the file must be exactly that content. */
export function checkDigest(decoded: DecodedBundle, expectedHex: string): BundleError | null {
  if (decoded.digest === expectedHex.toLowerCase()) return null
  return new BundleError('COORD_BUNDLE_DIGEST_MISMATCH', `bundle digest is ${decoded.digest}, expected ${expectedHex}`)
}

interface Envelope extends BundleContent {
  signature?: BundleSignature
}

const malformed = (message: string, cause?: unknown): BundleError =>
  new BundleError('COORD_BUNDLE_MALFORMED', message, cause === undefined ? {} : { cause })

/** CBOR major type 5 (map) is 0xa0-0xbf in the first byte. */
const startsWithMap = (bytes: Uint8Array): boolean => bytes.length > 0 && ((bytes[0] ?? 0) & 0xe0) === 0xa0

function readEnvelope(bytes: Uint8Array): Envelope | BundleError {
  if (bytes.length === 0) return malformed('bundle file is empty')
  if (!startsWithMap(bytes)) return malformed('not a task bundle: the file does not start with a CBOR map')
  let value: unknown
  try {
    value = cbor.decode(bytes)
  } catch (err) {
    const message = (err as Error).message
    // cbor-x reports reading past the end either way, depending on where the data stops.
    if (err instanceof RangeError || /^Unexpected end of/i.test(message)) return malformed(`bundle file is truncated (${bytes.length} bytes): the CBOR data ends early`, err)
    return malformed(`bundle file is not valid CBOR: ${message}`, err)
  }
  return envelopeFields(value)
}

function envelopeFields(value: unknown): Envelope | BundleError {
  if (!isRecord(value)) return malformed('not a task bundle: the CBOR value is not a map')
  if (value['format'] !== BUNDLE_FORMAT) return malformed(`not a task bundle: format is ${describe(value['format'])}, expected "${BUNDLE_FORMAT}"`)
  if (value['formatVersion'] !== BUNDLE_FORMAT_VERSION) {
    return malformed(`bundle formatVersion ${describe(value['formatVersion'])} is not supported (this version reads ${BUNDLE_FORMAT_VERSION})`)
  }
  const unknown = Object.keys(value).filter((k) => !ENVELOPE_KEYS.has(k))
  if (unknown.length > 0) return malformed(`bundle has unexpected field(s) ${unknown.map((k) => `"${k}"`).join(', ')}`)
  const { manifest, code, signature } = value
  if (typeof manifest !== 'string') return malformed(`bundle field "manifest" must be a text string, got ${describe(manifest)}`)
  if (typeof code !== 'string' || code.length === 0) return malformed(`bundle field "code" must be a non-empty text string, got ${describe(code)}`)
  if (signature === undefined) return { manifestText: manifest, code }
  const sig = signatureFields(signature)
  return sig instanceof BundleError ? sig : { manifestText: manifest, code, signature: sig }
}

function signatureFields(value: unknown): BundleSignature | BundleError {
  if (!isRecord(value)) return malformed(`bundle field "signature" must be a map, got ${describe(value)}`)
  const unknown = Object.keys(value).filter((k) => !SIGNATURE_KEYS.has(k))
  if (unknown.length > 0) return malformed(`bundle signature has unexpected field(s) ${unknown.map((k) => `"${k}"`).join(', ')}`)
  const { algorithm, publicKey, value: sig } = value
  if (algorithm !== 'ed25519') return malformed(`bundle signature algorithm is ${describe(algorithm)}, expected "ed25519"`)
  if (typeof publicKey !== 'string' || !BASE64.test(publicKey)) return malformed('bundle signature "publicKey" must be base64 text')
  if (typeof sig !== 'string' || !BASE64.test(sig)) return malformed('bundle signature "value" must be base64 text')
  return { algorithm, publicKey, value: sig }
}

function checkSignature(signature: BundleSignature, digest: string): BundleSigner | BundleError {
  let key: KeyObject
  try {
    key = createPublicKey({ key: Buffer.from(signature.publicKey, 'base64'), format: 'der', type: 'spki' })
  } catch (err) {
    return malformed('bundle signature "publicKey" is not a public key in SPKI DER form', err)
  }
  if (key.asymmetricKeyType !== 'ed25519') return malformed(`bundle signature "publicKey" is a ${key.asymmetricKeyType ?? 'unknown'} key, expected Ed25519`)
  const id = keyIdOf(key)
  if (!signatureMatches(key, digest, signature.value)) {
    return new BundleError('COORD_BUNDLE_SIGNATURE_INVALID', `bundle signature by key ${id} does not match its content: the bundle was altered after signing`)
  }
  return { keyId: id, publicKeyPem: key.export({ type: 'spki', format: 'pem' }).toString() }
}

/** A signature of the wrong length makes verify throw; it is as invalid as a wrong one. */
function signatureMatches(key: KeyObject, digest: string, value: string): boolean {
  try {
    return verify(null, Buffer.from(digest, 'hex'), key, Buffer.from(value, 'base64'))
  } catch {
    return false
  }
}

function parseManifestText(text: string): TaskManifest | BundleError {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    return new BundleError('COORD_BUNDLE_MANIFEST_INVALID', `bundle manifest is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  const parsed = parseManifest(json)
  if (parsed.ok) return parsed.manifest
  return new BundleError('COORD_BUNDLE_MANIFEST_INVALID', `bundle manifest is invalid:\n  ${parsed.errors.join('\n  ')}`, { errors: parsed.errors })
}

function assertManifestValid(text: string): void {
  const manifest = parseManifestText(text)
  if (manifest instanceof BundleError) throw manifest
}

function signatureFor(digest: string, privateKeyPem: string): BundleSignature {
  const key = ed25519PrivateKey(privateKeyPem)
  return {
    algorithm: 'ed25519',
    publicKey: spkiDer(createPublicKey(key)).toString('base64'),
    value: sign(null, Buffer.from(digest, 'hex'), key).toString('base64'),
  }
}

function ed25519PrivateKey(pem: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new InvalidArgumentError('the signing key is not a private key in PEM form', { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new InvalidArgumentError(`the signing key is a ${key.asymmetricKeyType ?? 'unknown'} key, expected Ed25519`)
  return key
}

function publicKeyFrom(key: string | Uint8Array): KeyObject {
  try {
    return typeof key === 'string' ? createPublicKey(key) : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' })
  } catch (err) {
    throw new InvalidArgumentError('not a public key (PEM or SPKI DER)', { cause: err })
  }
}

const spkiDer = (key: KeyObject): Buffer => key.export({ type: 'spki', format: 'der' })

/** Trusted keys come from config; one that does not parse matches nothing rather than failing every install. */
function keyIdOrUndefined(pem: string): string | undefined {
  try {
    return keyId(pem)
  } catch {
    return undefined
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Map)
}

function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `"${v.slice(0, 37)}..."` : `"${v}"`
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? 'an array' : ArrayBuffer.isView(v) ? 'a byte string' : 'a map'
}
