import { createHash, generateKeyPairSync } from 'node:crypto'
import { Encoder } from 'cbor-x'
import { describe, expect, it } from 'vitest'
import {
  BundleError, bundleDigest, checkDigest, decodeBundle, encodeBundle, keyId, signBundle, verifyBundleTrust,
  type BundleErrorCode, type DecodedBundle,
} from '../../../coordinator/protocol/index.js'

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })
const MAX = 1024 * 1024

function keyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

const author = keyPair()
const stranger = keyPair()
const manifestText = JSON.stringify({ name: 'thermostat', version: '1.2.0', entry: 'src/index.ts', triggers: [{ type: 'invoke' }] })
const code = 'var __edgeTask = (() => ({ handler: async () => 42 }))();'
const content = { manifestText, code }

function decoded(bytes: Uint8Array): DecodedBundle {
  const r = decodeBundle(bytes, { maxBytes: MAX })
  if (!r.ok) throw r.error
  return r.bundle
}

function refused(bytes: Uint8Array, code: BundleErrorCode, maxBytes = MAX): BundleError {
  const r = decodeBundle(bytes, { maxBytes })
  if (r.ok) throw new Error('expected the bundle to be refused')
  expect(r.error).toBeInstanceOf(BundleError)
  expect(r.error.code).toBe(code)
  return r.error
}

/** A copy with the lowest bit of the first byte of `text` flipped. */
function flipByteOf(bytes: Uint8Array, text: string): Uint8Array {
  const copy = new Uint8Array(bytes)
  const at = Buffer.from(copy).indexOf(text)
  copy[at] = (copy[at] ?? 0) ^ 0x01
  return copy
}

/** An envelope with any fields, to build malformed files. */
const envelope = (fields: Record<string, unknown>): Uint8Array =>
  new Uint8Array(cbor.encode({ format: 'edge-task-bundle', formatVersion: 1, manifest: manifestText, code, ...fields }))

describe('bundle round trip', () => {
  it('decodes what it encodes, manifest parsed with defaults', () => {
    const b = decoded(encodeBundle(content))
    expect(b.manifestText).toBe(manifestText)
    expect(b.code).toBe(code)
    expect(b.manifest).toMatchObject({ name: 'thermostat', version: '1.2.0', handler: 'handler', limits: { memoryMb: 32 } })
    expect(b.signer).toBeUndefined()
    expect(b.digest).toMatch(/^[0-9a-f]{64}$/)
  })

  it('carries the signer of a signed bundle', () => {
    const b = decoded(encodeBundle(content, { privateKeyPem: author.privateKeyPem }))
    expect(b.signer).toEqual({ keyId: keyId(author.publicKeyPem), publicKeyPem: author.publicKeyPem })
  })

  it('is a plain CBOR map with the documented fields', () => {
    const file = cbor.decode(encodeBundle(content, { privateKeyPem: author.privateKeyPem })) as Record<string, unknown>
    expect(Object.keys(file).sort()).toEqual(['code', 'format', 'formatVersion', 'manifest', 'signature'])
    expect(file).toMatchObject({ format: 'edge-task-bundle', formatVersion: 1, manifest: manifestText, code, signature: { algorithm: 'ed25519' } })
  })

  it('refuses to encode an invalid manifest', () => {
    expect(() => encodeBundle({ manifestText: '{"name":"x"}', code })).toThrow(expect.objectContaining({ code: 'COORD_BUNDLE_MANIFEST_INVALID' }))
  })

  it('refuses a signing key that is not Ed25519', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    expect(() => encodeBundle(content, { privateKeyPem: rsa })).toThrow(/the signing key is a rsa key, expected Ed25519/)
    expect(() => encodeBundle(content, { privateKeyPem: 'not a key' })).toThrow(/not a private key in PEM form/)
  })
})

describe('digest', () => {
  it('is SHA-256 of the deterministic CBOR array [1, manifestText, code]', () => {
    const small = { manifestText: 'ab', code: 'cd' }
    // 0x83 array(3), 0x01, 0x62 text(2) "ab", 0x62 text(2) "cd"
    const expected = createHash('sha256').update(Buffer.from('83016261626263' + '64', 'hex')).digest('hex')
    expect(bundleDigest(small)).toBe(expected)
  })

  it('is stable across encodings and independent of the signature', () => {
    const unsigned = decoded(encodeBundle(content)).digest
    expect(decoded(encodeBundle(content)).digest).toBe(unsigned)
    expect(decoded(encodeBundle(content, { privateKeyPem: author.privateKeyPem })).digest).toBe(unsigned)
    expect(decoded(encodeBundle(content, { privateKeyPem: stranger.privateKeyPem })).digest).toBe(unsigned)
    expect(bundleDigest(content)).toBe(unsigned)
  })

  it('changes with the manifest or the code', () => {
    const other = decoded(encodeBundle({ manifestText, code: `${code} ` })).digest
    expect(other).not.toBe(bundleDigest(content))
  })

  it('checkDigest names both digests on a mismatch', () => {
    const b = decoded(encodeBundle(content))
    expect(checkDigest(b, b.digest.toUpperCase())).toBeNull()
    const err = checkDigest(b, '00'.repeat(32))
    expect(err?.code).toBe('COORD_BUNDLE_DIGEST_MISMATCH')
    expect(err?.message).toContain(b.digest)
  })
})

describe('signatures', () => {
  it('detects one flipped byte of code as tampering', () => {
    const bytes = encodeBundle(content, { privateKeyPem: author.privateKeyPem })
    const tampered = flipByteOf(bytes, '42')
    const err = refused(tampered, 'COORD_BUNDLE_SIGNATURE_INVALID')
    expect(err.message).toMatch(/altered after signing/)
  })

  it('detects a changed manifest before reading it', () => {
    const bytes = encodeBundle(content, { privateKeyPem: author.privateKeyPem })
    const file = cbor.decode(bytes) as Record<string, unknown>
    refused(envelope({ signature: file['signature'], manifest: manifestText.replace('1.2.0', '1.2.1') }), 'COORD_BUNDLE_SIGNATURE_INVALID')
  })

  it('detects a signature swapped in from another key', () => {
    const mine = cbor.decode(encodeBundle(content, { privateKeyPem: author.privateKeyPem })) as { signature: Record<string, unknown> }
    const theirs = cbor.decode(encodeBundle(content, { privateKeyPem: stranger.privateKeyPem })) as { signature: Record<string, unknown> }
    refused(envelope({ signature: { ...mine.signature, value: theirs.signature['value'] } }), 'COORD_BUNDLE_SIGNATURE_INVALID')
  })

  it('signBundle adds or replaces the signature and keeps the digest', () => {
    const unsigned = encodeBundle(content)
    const signed = decoded(signBundle(unsigned, author.privateKeyPem))
    expect(signed.signer?.keyId).toBe(keyId(author.publicKeyPem))
    const resigned = decoded(signBundle(signBundle(unsigned, author.privateKeyPem), stranger.privateKeyPem))
    expect(resigned.signer?.keyId).toBe(keyId(stranger.publicKeyPem))
    expect(resigned.digest).toBe(signed.digest)
  })

  it('signBundle refuses a tampered bundle instead of vouching for it', () => {
    const tampered = flipByteOf(encodeBundle(content, { privateKeyPem: author.privateKeyPem }), '42')
    expect(() => signBundle(tampered, author.privateKeyPem)).toThrow(expect.objectContaining({ code: 'COORD_BUNDLE_SIGNATURE_INVALID' }))
  })

  it('keyId is the first 16 hex characters of SHA-256 over the SPKI DER, from any key form', () => {
    const der = Buffer.from(author.publicKeyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
    const expected = createHash('sha256').update(der).digest('hex').slice(0, 16)
    expect([keyId(author.publicKeyPem), keyId(author.privateKeyPem), keyId(der)]).toEqual([expected, expected, expected])
  })
})

describe('trust', () => {
  const unsigned = decoded(encodeBundle(content))
  const signed = decoded(encodeBundle(content, { privateKeyPem: author.privateKeyPem }))

  it('accepts a bundle signed by a trusted key', () => {
    expect(verifyBundleTrust(signed, { trustedKeys: [stranger.publicKeyPem, author.publicKeyPem], allowUnsigned: false })).toBeNull()
  })

  it('refuses an unsigned bundle unless unsigned bundles are allowed', () => {
    expect(verifyBundleTrust(unsigned, { trustedKeys: [author.publicKeyPem], allowUnsigned: false })?.code).toBe('COORD_BUNDLE_UNSIGNED')
    expect(verifyBundleTrust(unsigned, { trustedKeys: [], allowUnsigned: true })).toBeNull()
  })

  it('refuses a valid signature by an untrusted key, naming the keyId, even when unsigned is allowed', () => {
    for (const allowUnsigned of [false, true]) {
      const err = verifyBundleTrust(signed, { trustedKeys: [stranger.publicKeyPem], allowUnsigned })
      expect(err?.code).toBe('COORD_BUNDLE_UNTRUSTED')
      expect(err?.message).toContain(keyId(author.publicKeyPem))
    }
  })

  it('skips a trusted key that does not parse instead of failing', () => {
    expect(verifyBundleTrust(signed, { trustedKeys: ['garbage', author.publicKeyPem], allowUnsigned: false })).toBeNull()
  })
})

describe('malformed files', () => {
  const good = encodeBundle(content, { privateKeyPem: author.privateKeyPem })

  it('refuses a file over the size limit before decoding it', () => {
    expect(refused(good, 'COORD_BUNDLE_TOO_LARGE', good.length - 1).message).toBe(`bundle is ${good.length} bytes, more than the limit of ${good.length - 1}`)
    expect(decodeBundle(good, { maxBytes: good.length }).ok).toBe(true)
  })

  it('says a truncated file is truncated, wherever it is cut', () => {
    for (let n = 1; n < good.length; n += 7) {
      expect(refused(good.subarray(0, n), 'COORD_BUNDLE_MALFORMED').message).toMatch(/^bundle file is truncated \(\d+ bytes\)/)
    }
    expect(refused(new Uint8Array(0), 'COORD_BUNDLE_MALFORMED').message).toBe('bundle file is empty')
  })

  it('says a file that is not CBOR (or not a map) is not a bundle', () => {
    expect(refused(new TextEncoder().encode('{"name":"thermostat"}'), 'COORD_BUNDLE_MALFORMED').message).toMatch(/not a task bundle: the file does not start with a CBOR map/)
    expect(refused(new Uint8Array(cbor.encode([1, 2])), 'COORD_BUNDLE_MALFORMED').message).toMatch(/not a task bundle/)
    expect(refused(new Uint8Array([...good, 0x00]), 'COORD_BUNDLE_MALFORMED').message).toMatch(/not valid CBOR/)
  })

  it('names a wrong format, version, missing or mistyped field', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ format: 'zip' }, /format is "zip", expected "edge-task-bundle"/],
      [{ formatVersion: 2 }, /formatVersion 2 is not supported/],
      [{ manifest: undefined }, /field "manifest" must be a text string, got undefined/],
      [{ manifest: { name: 'x' } }, /field "manifest" must be a text string, got a map/],
      [{ code: new Uint8Array([1]) }, /field "code" must be a non-empty text string, got a byte string/],
      [{ code: '' }, /field "code" must be a non-empty text string/],
      [{ extra: 1 }, /unexpected field\(s\) "extra"/],
      [{ signature: 'yes' }, /field "signature" must be a map/],
      [{ signature: { algorithm: 'rsa', publicKey: '', value: '' } }, /algorithm is "rsa", expected "ed25519"/],
      [{ signature: { algorithm: 'ed25519', publicKey: '!!', value: '' } }, /"publicKey" must be base64 text/],
      [{ signature: { algorithm: 'ed25519', publicKey: 'AAAA', value: '' } }, /"publicKey" is not a public key in SPKI DER form/],
    ]
    for (const [fields, message] of cases) expect(refused(envelope(fields), 'COORD_BUNDLE_MALFORMED').message).toMatch(message)
  })

  it('refuses an invalid manifest, listing its errors', () => {
    const err = refused(envelope({ manifest: JSON.stringify({ name: '../x', version: '1.0.0', entry: 'a.js', triggers: [{ type: 'invoke' }] }) }), 'COORD_BUNDLE_MANIFEST_INVALID')
    expect(err.errors).toEqual(['name: expected 1-63 characters of a-z 0-9 - starting with a letter or digit, got "../x"'])
    expect(err.message).toContain('name: expected 1-63 characters')
    expect(refused(envelope({ manifest: JSON.stringify({ name: 'a/b', version: '1.0.0', entry: 'a.js' }) }), 'COORD_BUNDLE_MANIFEST_INVALID').errors[0]).toMatch(/^name: .*got "a\/b"/)
    expect(refused(envelope({ manifest: '{not json' }), 'COORD_BUNDLE_MANIFEST_INVALID').message).toMatch(/manifest is not valid JSON/)
  })

  it('serializes errors as code and message for the wire', () => {
    const err = refused(envelope({ format: 'zip' }), 'COORD_BUNDLE_MALFORMED')
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ name: 'BundleError', code: 'COORD_BUNDLE_MALFORMED', retryable: false })
  })
})
