/**
 * The local HTTP APIs and the MQTT-over-WebSocket listener against web pages. No browser runs
 * here: each request is what a browser sends for the attack (a cross-site `text/plain` POST, a
 * request under a DNS-rebound name, a cross-site WebSocket upgrade), made with node:http so that
 * `Host` and `Origin` can be set, against a real coordinator and a real cloud shim.
 */
import { request } from 'node:http'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type IClientOptions } from 'mqtt'
import WebSocket from 'ws'
import { isAuthorized } from '../../coordinator/api/server.js'
import { silentLogger } from '../../coordinator/core/log.js'
import { ensureApiToken } from '../../coordinator/pki/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

interface Answer {
  status: number
  body: Record<string, unknown>
  text: string
}

/** One request with exactly these headers (node:http lets Host be set, unlike fetch). */
function send(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string | Uint8Array): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers: { ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: Record<string, unknown> = {}
        try {
          parsed = JSON.parse(text) as Record<string, unknown>
        } catch {
          // Not JSON: the assertions on `text` say what was expected.
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const EVIL = 'http://evil.example'
const TEXT = { 'content-type': 'text/plain;charset=UTF-8' }
const JSON_TYPE = { 'content-type': 'application/json' }

/** Resolves with the HTTP status of a refused upgrade, or 101 once the WebSocket opens. */
function upgrade(url: string, opts: { origin?: string; host?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['mqtt'], { ...(opts.origin === undefined ? {} : { origin: opts.origin }), ...(opts.host === undefined ? {} : { headers: { host: opts.host } }) })
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.once('open', () => {
      resolve(101)
      ws.close()
    })
    ws.once('error', (err) => {
      if (ws.readyState !== WebSocket.CLOSED) reject(err)
    })
  })
}

/** Whether an MQTT.js client gets a CONNACK, or its connection closes first. */
function mqttOutcome(url: string, opts: IClientOptions): Promise<string> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    client.once('connect', () => {
      resolve('connected')
      client.end(true)
    })
    client.once('close', () => {
      resolve('closed before CONNACK')
      client.end(true)
    })
  })
}

describe('coordinator HTTP API and WebSocket listener against web pages', () => {
  let run: RunningCoordinator
  let base: string
  let ws: string

  beforeAll(async () => {
    run = await startCoordinator({ web: { allowedHosts: ['gateway.example'], allowedOrigins: ['http://console.example:8080'] } })
    base = run.httpUrl
    ws = `ws://127.0.0.1:${run.endpoints.ws.port}/mqtt`
  })
  afterAll(() => run.stop())

  describe('CSRF: a page POSTs without a preflight', () => {
    it('should refuse a cross-site text/plain shadow update with 403 and change nothing', async () => {
      const r = await send(base, 'POST', '/things/lamp-1/shadow', { ...TEXT, origin: EVIL }, '{"state":{"desired":{"on":true}}}')
      // The AWS-shaped routes keep AWS's error document.
      expect(r).toMatchObject({ status: 403, body: { code: 403, message: expect.stringContaining("origin 'http://evil.example'") } })
      expect((await send(base, 'GET', '/things/lamp-1/shadow')).status).toBe(404)
    })

    it('should refuse text/plain, form and typeless bodies on writes with 415 even without an Origin', async () => {
      const doc = '{"state":{"desired":{"on":true}}}'
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
        const r = await send(base, 'POST', '/things/lamp-1/shadow', { 'content-type': type }, doc)
        expect(r).toMatchObject({ status: 415, body: { code: 415, message: expect.stringContaining('application/json') } })
      }
      expect((await send(base, 'POST', '/things/lamp-1/shadow', {}, doc)).status).toBe(415)
      expect((await send(base, 'POST', '/v1/tasks/x/invoke', TEXT, '{}')).body).toMatchObject({ code: 'COORD_API_UNSUPPORTED_MEDIA_TYPE' })
      expect((await send(base, 'GET', '/things/lamp-1/shadow')).status).toBe(404)
    })

    it('should refuse a cross-site DELETE or bodyless POST, which carry no content type to check', async () => {
      expect((await send(base, 'DELETE', '/v1/tasks/anything', { origin: EVIL })).body).toMatchObject({ code: 'COORD_API_ORIGIN_REFUSED' })
      expect((await send(base, 'POST', '/v1/tasks/anything/stop', { origin: 'null' })).status).toBe(403)
    })

    it('should accept JSON from a non-browser client, the same origin and an allowed origin, and the AWS SDK\'s octet-stream', async () => {
      const doc = (v: number): string => JSON.stringify({ state: { desired: { level: v } } })
      expect((await send(base, 'POST', '/things/lamp-1/shadow', JSON_TYPE, doc(1))).status).toBe(200)
      expect((await send(base, 'POST', '/things/lamp-1/shadow', { ...JSON_TYPE, origin: base }, doc(2))).status).toBe(200)
      expect((await send(base, 'POST', '/things/lamp-1/shadow', { ...JSON_TYPE, origin: 'http://console.example:8080' }, doc(3))).status).toBe(200)
      expect((await send(base, 'POST', '/things/lamp-1/shadow', { 'content-type': 'application/octet-stream' }, doc(4))).status).toBe(200)
      expect((await send(base, 'GET', '/things/lamp-1/shadow')).body).toMatchObject({ state: { desired: { level: 4 } }, version: 4 })
      // Bodyless control requests from the CLI carry no content type.
      expect((await send(base, 'POST', '/v1/tasks/anything/stop')).body).toMatchObject({ code: 'COORD_TASK_NOT_FOUND' })
    })
  })

  describe('DNS rebinding: a page under its own name reads the answers', () => {
    it('should answer 421 to a name the daemon does not serve, before authorization or routing', async () => {
      const host = `rebind.evil.example:${new URL(base).port}`
      expect(await send(base, 'GET', '/things/lamp-1/shadow', { host })).toMatchObject({ status: 421, body: { code: 421 } })
      const r = await send(base, 'GET', '/v1/discovery/lamp-1', { host })
      expect(r).toMatchObject({ status: 421, body: { code: 'COORD_API_HOST_REFUSED', message: expect.stringContaining('web.allowedHosts') } })
      expect(r.text).not.toContain('BEGIN CERTIFICATE')
      expect((await send(base, 'GET', '/no/such/route', { host })).status).toBe(421)
    })

    it('should serve IP literals, localhost, this host and web.allowedHosts', async () => {
      const port = new URL(base).port
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, `gateway.example:${port}`, 'gateway.example']) {
        expect((await send(base, 'GET', '/healthz', { host })).status, host).toBe(200)
      }
    })
  })

  describe('cross-site MQTT over WebSocket', () => {
    it('should refuse an upgrade from another site\'s page before any MQTT is spoken', async () => {
      expect(await upgrade(ws, { origin: EVIL })).toBe(403)
      expect(await upgrade(ws, { origin: 'null' })).toBe(403)
      // What an anonymous loopback client used to get from any page: a session as lamp-1.
      expect(await mqttOutcome(ws, { clientId: 'lamp-1', wsOptions: { origin: EVIL } })).toBe('closed before CONNACK')
    })

    it('should refuse an upgrade under a rebound host name', async () => {
      const host = `rebind.evil.example:${run.endpoints.ws.port}`
      expect(await upgrade(ws, { host, origin: `http://${host}` })).toBe(421)
    })

    it('should accept device clients (no Origin), the same origin and an allowed origin', async () => {
      expect(await upgrade(ws, { origin: `http://127.0.0.1:${run.endpoints.ws.port}` })).toBe(101)
      expect(await upgrade(ws, { origin: 'http://console.example:8080' })).toBe(101)
      const device = await connect(ws, { clientId: 'lamp-1' })
      await device.endAsync()
    })
  })

  describe('one error shape', () => {
    it('should answer {code: COORD_..., message} on every non-AWS route, with the HTTP status', async () => {
      expect(await send(base, 'GET', '/no/such/route')).toMatchObject({ status: 404, body: { code: 'COORD_API_NO_ROUTE', message: expect.any(String) } })
      expect(await send(base, 'PUT', '/v1/tasks')).toMatchObject({ status: 405, body: { code: 'COORD_API_METHOD_NOT_ALLOWED' } })
      expect(await send(base, 'GET', '/v1/tasks/ghost')).toMatchObject({ status: 404, body: { code: 'COORD_TASK_NOT_FOUND' } })
    })

    it('should answer 400, not 500, to a malformed percent-encoding in the path', async () => {
      expect(await send(base, 'GET', '/v1/tasks/%E0%A4%A')).toMatchObject({ status: 400, body: { code: 'COORD_INVALID_ARG', message: expect.stringContaining('percent-encoding') } })
      expect(await send(base, 'GET', '/things/%ZZ/shadow')).toMatchObject({ status: 400, body: { code: 400 } })
      expect((await send(base, 'GET', '/healthz')).status).toBe(200)
    })
  })
})

describe('the API token', () => {
  it('should replace an empty or whitespace-only api-token file with a fresh owner-only token', async () => {
    const tmp = tempDir()
    try {
      writeFileSync(join(tmp.dir, 'api-token'), '  \n\t\n', { mode: 0o644 })
      const run = await startCoordinator({}, { dataDir: tmp.dir })
      await run.stop({ keepData: true })
      const token = readFileSync(join(tmp.dir, 'api-token'), 'utf8').trim()
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(statSync(join(tmp.dir, 'api-token')).mode & 0o777).toBe(0o600)
      expect(ensureApiToken(join(tmp.dir, 'api-token'), silentLogger())).toBe(token)
    } finally {
      tmp.remove()
    }
  })

  it('should never let an empty token authorize a remote caller', () => {
    expect(isAuthorized('192.0.2.7', 'Bearer ', '')).toBe(false)
    expect(isAuthorized('192.0.2.7', undefined, '')).toBe(false)
    expect(isAuthorized('192.0.2.7', 'Bearer abc', 'abc')).toBe(true)
  })
})

describe('cloud shim HTTP API against web pages', () => {
  let run: RunningCloudShim
  let base: string

  beforeAll(async () => {
    run = await startCloudShim()
    base = run.httpUrl
  })
  afterAll(() => run.stop())

  it('should refuse a cross-site or text/plain POST /v1/coordinators and register nothing', async () => {
    expect(await send(base, 'POST', '/v1/coordinators', { ...TEXT, origin: EVIL }, '{"name":"gw-evil"}')).toMatchObject({ status: 403, body: { code: 'COORD_API_ORIGIN_REFUSED' } })
    expect(await send(base, 'POST', '/v1/coordinators', TEXT, '{"name":"gw-evil"}')).toMatchObject({ status: 415, body: { code: 'COORD_API_UNSUPPORTED_MEDIA_TYPE' } })
    expect(await send(base, 'GET', '/v1/things/gw-evil')).toMatchObject({ status: 404, body: { code: 'COORD_NOT_FOUND' } })
  })

  it('should not hand a join document (with its private key) to a page under a rebound name', async () => {
    const host = `rebind.evil.example:${new URL(base).port}`
    const r = await send(base, 'POST', '/v1/coordinators', { ...JSON_TYPE, host, origin: `http://${host}` }, '{"name":"gw-rebound"}')
    expect(r).toMatchObject({ status: 421, body: { code: 'COORD_API_HOST_REFUSED' } })
    expect(r.text).not.toContain('PRIVATE KEY')
    expect((await send(base, 'GET', '/v1/things/gw-rebound')).status).toBe(404)
    const own = await send(base, 'POST', '/v1/coordinators', JSON_TYPE, '{"name":"gw-1"}')
    expect(own.status).toBe(201)
    expect(own.text).toContain('PRIVATE KEY')
  })

  it('should answer 400 with the query error to deeply nested group queries, never a 500 or a stack overflow', async () => {
    const deep = `${'('.repeat(5000)}name = a${')'.repeat(5000)}`
    const listed = await send(base, 'GET', `/v1/things?query=${encodeURIComponent(deep)}`)
    expect(listed).toMatchObject({ status: 400, body: { code: 'COORD_REGISTRY_QUERY_INVALID', message: expect.stringContaining('limit'), position: expect.any(Number) } })
    const nested = `${'NOT '.repeat(40)}name = a`
    expect(await send(base, 'POST', '/v1/groups', JSON_TYPE, JSON.stringify({ name: 'deep', query: nested }))).toMatchObject({ status: 400, body: { code: 'COORD_REGISTRY_QUERY_INVALID', message: expect.stringContaining('deeper than') } })
    const huge = JSON.stringify({ name: 'huge', query: '('.repeat(1_000_000) })
    expect(await send(base, 'POST', '/v1/groups', JSON_TYPE, huge)).toMatchObject({ status: 400, body: { code: 'COORD_REGISTRY_QUERY_INVALID' } })
    expect((await send(base, 'GET', '/healthz')).status).toBe(200)
  })

  it('should use one error shape, without the old numeric code and `error` field, and 400 for a bad percent-encoding', async () => {
    const r = await send(base, 'GET', '/v1/groups/nope')
    expect(r).toMatchObject({ status: 404, body: { code: 'COORD_NOT_FOUND', message: 'no group named "nope"' } })
    expect(r.body).not.toHaveProperty('error')
    expect(await send(base, 'GET', '/v1/things/%E0%A4%A')).toMatchObject({ status: 400, body: { code: 'COORD_INVALID_ARG' } })
    expect(await send(base, 'POST', '/v1/things', JSON_TYPE, '{"name":')).toMatchObject({ status: 400, body: { code: 'COORD_INVALID_ARG', message: expect.stringContaining('not valid JSON') } })
  })
})
