/**
 * The bundle catalog over HTTP: uploads checked with the bundle format's own decoder and trust
 * rules, immutable name@version, and downloads by digest that resume with byte ranges.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeBundle } from '../../coordinator/protocol/index.js'
import { makeBundle, signingKeys, startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'

const keys = signingKeys()
const stranger = signingKeys()

interface Answer {
  status: number
  body: Record<string, unknown>
}

async function upload(run: RunningCloudShim, bytes: Uint8Array): Promise<Answer> {
  const res = await fetch(`${run.httpUrl}/v1/bundles`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** Reads the body until at least `n` bytes arrived, then drops the connection: a link that failed. */
async function readPartially(url: string, n: number): Promise<Buffer> {
  const res = await fetch(url)
  const reader = res.body!.getReader()
  const chunks: Uint8Array[] = []
  let got = 0
  while (got < n) {
    const { value, done } = await reader.read()
    if (done) break
    chunks.push(value)
    got += value.length
  }
  await reader.cancel()
  return Buffer.concat(chunks).subarray(0, n)
}

describe('bundle catalog', () => {
  let run: RunningCloudShim
  const signed = makeBundle({ name: 'thermostat', version: '1.2.0', requires: ['gpio'], padding: 300_000, key: keys.privateKeyPem })

  beforeAll(async () => {
    run = await startCloudShim({ bundles: { trustedKeys: [keys.publicKeyPem], allowUnsigned: false, maxBundleBytes: 1024 * 1024 } })
  })

  afterAll(async () => {
    await run?.stop()
  })

  it('should catalogue a signed bundle under its digest, list it and show its versions newest first', async () => {
    const first = await upload(run, signed)
    expect(first.status).toBe(201)
    expect(first.body).toMatchObject({ name: 'thermostat', version: '1.2.0', size: signed.length, requires: ['gpio'], created: true })
    const digest = first.body['digest'] as string
    expect(existsSync(join(run.dataDir, 'bundles', `${digest}.bundle`))).toBe(true)
    expect((await upload(run, makeBundle({ name: 'thermostat', version: '1.10.0', key: keys.privateKeyPem }))).status).toBe(201)
    const again = await upload(run, signed)
    expect(again).toMatchObject({ status: 200, body: { digest, created: false } })
    const versions = (await (await fetch(`${run.httpUrl}/v1/bundles/thermostat`)).json()) as { versions: Array<{ version: string }> }
    expect(versions.versions.map((v) => v.version)).toEqual(['1.10.0', '1.2.0'])
    const list = (await (await fetch(`${run.httpUrl}/v1/bundles`)).json()) as { bundles: unknown[] }
    expect(list.bundles).toMatchObject([{ name: 'thermostat', versions: 2, latest: { version: '1.10.0' } }])
    const one = (await (await fetch(`${run.httpUrl}/v1/bundles/thermostat/1.2.0`)).json()) as Record<string, unknown>
    expect(one).toMatchObject({ digest, manifest: { name: 'thermostat', entry: 'index.js', requires: ['gpio'] } })
  })

  it('should refuse a different bundle under a name@version already taken (409)', async () => {
    const other = makeBundle({ name: 'thermostat', version: '1.2.0', padding: 10, key: keys.privateKeyPem })
    const r = await upload(run, other)
    expect(r).toMatchObject({ status: 409, body: { code: 'COORD_CONFLICT' } })
    expect(r.body['message']).toMatch(/thermostat@1\.2\.0 is already catalogued with digest/)
  })

  it.each([
    ['a tampered bundle', 422, 'COORD_BUNDLE_SIGNATURE_INVALID', () => tamper(makeBundle({ name: 'evil', version: '1.0.0', key: keys.privateKeyPem }))],
    ['an unsigned bundle', 403, 'COORD_BUNDLE_UNSIGNED', () => makeBundle({ name: 'loose', version: '1.0.0' })],
    ['a bundle signed by an untrusted key', 403, 'COORD_BUNDLE_UNTRUSTED', () => makeBundle({ name: 'other', version: '1.0.0', key: stranger.privateKeyPem })],
    ['a truncated bundle', 400, 'COORD_BUNDLE_MALFORMED', () => signed.subarray(0, 1000)],
  ])('should refuse %s with %i and the bundle error code', async (_what, status, code, make) => {
    const r = await upload(run, make())
    expect(r).toMatchObject({ status, body: { code } })
  })

  it('should refuse a bundle over bundles.maxBundleBytes with 413 before reading all of it', async () => {
    const r = await upload(run, makeBundle({ name: 'huge', version: '1.0.0', padding: 1024 * 1024, key: keys.privateKeyPem }))
    expect(r).toMatchObject({ status: 413, body: { code: 'COORD_BUNDLE_TOO_LARGE' } })
  })

  it('should serve a download by digest that resumes from a byte range to the same content', async () => {
    const digest = (decodeBundle(signed, { maxBytes: 1e9 }) as { ok: true; bundle: { digest: string } }).bundle.digest
    const url = `${run.httpUrl}/v1/bundles/by-digest/${digest}`
    const head = await fetch(url, { method: 'HEAD' })
    expect(head.headers.get('content-length')).toBe(String(signed.length))
    expect(head.headers.get('accept-ranges')).toBe('bytes')
    const etag = head.headers.get('etag')
    expect(etag).toBe(`"${digest}"`)
    const start = await readPartially(url, 100)
    const rest = await fetch(url, { headers: { range: 'bytes=100-', 'if-range': etag ?? '' } })
    expect(rest.status).toBe(206)
    expect(rest.headers.get('content-range')).toBe(`bytes 100-${signed.length - 1}/${signed.length}`)
    const whole = Buffer.concat([start, Buffer.from(await rest.arrayBuffer())])
    const decoded = decodeBundle(whole, { maxBytes: 1e9 })
    expect(decoded.ok && decoded.bundle.digest).toBe(digest)
    expect(whole.equals(Buffer.from(signed))).toBe(true)
  })

  it('should answer 416 past the end, 304 for a known ETag, and 404 for an unknown digest', async () => {
    const digest = (decodeBundle(signed, { maxBytes: 1e9 }) as { ok: true; bundle: { digest: string } }).bundle.digest
    const url = `${run.httpUrl}/v1/bundles/by-digest/${digest}`
    const past = await fetch(url, { headers: { range: `bytes=${signed.length}-` } })
    expect(past.status).toBe(416)
    expect(past.headers.get('content-range')).toBe(`bytes */${signed.length}`)
    expect((await fetch(url, { headers: { 'if-none-match': `"${digest}"` } })).status).toBe(304)
    expect((await fetch(`${run.httpUrl}/v1/bundles/by-digest/${'0'.repeat(64)}`)).status).toBe(404)
    expect((await fetch(`${run.httpUrl}/v1/bundles/by-digest/..%2F..%2Fcloud.db`)).status).toBe(404)
  })

  it('should accept unsigned bundles only where the configuration allows them', async () => {
    const dev = await startCloudShim({ bundles: { trustedKeys: [], allowUnsigned: true, maxBundleBytes: 1024 * 1024 } })
    try {
      const r = await upload(dev, makeBundle({ name: 'loose', version: '0.1.0' }))
      expect(r).toMatchObject({ status: 201, body: { name: 'loose', signer: null } })
      const untrusted = await upload(dev, makeBundle({ name: 'other', version: '1.0.0', key: stranger.privateKeyPem }))
      expect(untrusted).toMatchObject({ status: 403, body: { code: 'COORD_BUNDLE_UNTRUSTED' } })
    } finally {
      await dev.stop()
    }
  })
})

/** Changes one character of the code after signing, as a man in the middle would. */
function tamper(bytes: Uint8Array): Uint8Array {
  const copy = Buffer.from(bytes)
  const at = copy.indexOf('return 1')
  copy.write('return 2', at)
  return copy
}
