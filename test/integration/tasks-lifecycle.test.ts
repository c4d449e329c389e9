import { readdirSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { keyId } from '../../coordinator/protocol/index.js'
import type { LogEntry } from '../../coordinator/tasks/index.js'
import { bundle, echoBody, ed25519Keys, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'

const counterBody = `exports.handler = async (event, ctx) => {
  const n = ((await ctx.state.get('count')) ?? 0) + 1
  await ctx.state.set('count', n)
  return { n, version: ctx.task.version }
}`

describe('task service lifecycle', () => {
  let h: TaskHarness
  beforeEach(async () => {
    h = await taskHarness()
  })
  afterEach(async () => {
    await h.close()
  })

  it('installs a bundle, lists it and invokes it', async () => {
    const info = await h.service.install(bundle(manifest('echo'), echoBody))
    expect(info).toMatchObject({ name: 'echo', version: '1.0.0', state: 'running', mode: 'on-demand', priority: 'normal', signer: null, lastError: null })
    expect(info.digest).toMatch(/^[0-9a-f]{64}$/)
    expect(new Date(info.installedAt).toISOString()).toBe(info.installedAt)
    expect(h.service.list().map((t) => t.name)).toEqual(['echo'])
    await expect(h.service.invoke('echo', { a: 1 })).resolves.toEqual({ version: '1.0.0', payload: { a: 1 } })
    expect(h.service.get('echo')?.metrics).toMatchObject({ calls: 1, failures: 0, rejected: 0, queueDepth: 0 })
  })

  it('stores the bundle once under its digest', async () => {
    const info = await h.service.install(bundle(manifest('echo'), echoBody))
    expect(readdirSync(h.options.bundleDir)).toEqual([`${info.digest}.bundle`])
  })

  it('stops and starts a task, refusing calls while stopped', async () => {
    await h.service.install(bundle(manifest('echo'), echoBody))
    expect((await h.service.stop('echo')).state).toBe('stopped')
    await expect(h.service.invoke('echo', 1)).rejects.toMatchObject({ code: 'COORD_TASK_STOPPED' })
    expect((await h.service.startTask('echo')).state).toBe('running')
    await expect(h.service.invoke('echo', 2)).resolves.toMatchObject({ payload: 2 })
  })

  it('removes a task with its state and bundle file', async () => {
    await h.service.install(bundle(manifest('counter'), counterBody))
    await h.service.invoke('counter', null)
    await h.service.remove('counter')
    expect(h.service.get('counter')).toBeUndefined()
    expect(h.service.list()).toEqual([])
    await expect(h.service.invoke('counter', null)).rejects.toMatchObject({ code: 'COORD_TASK_NOT_FOUND' })
    await expect(h.service.remove('counter')).rejects.toMatchObject({ code: 'COORD_TASK_NOT_FOUND' })
    expect(readdirSync(h.options.bundleDir)).toEqual([])
    await h.service.install(bundle(manifest('counter'), counterBody))
    await expect(h.service.invoke('counter', null)).resolves.toMatchObject({ n: 1 })
  })

  it('refuses to invoke a task that declares no invoke trigger', async () => {
    await h.service.install(bundle(manifest('ticker', { triggers: [{ type: 'schedule', every: '1h' }] }), echoBody))
    await expect(h.service.invoke('ticker', 1)).rejects.toMatchObject({ code: 'COORD_TASK_NOT_INVOKABLE' })
  })

  it('keeps running tasks, stopped tasks and task state across a restart', async () => {
    await h.service.install(bundle(manifest('counter'), counterBody))
    await h.service.install(bundle(manifest('idle'), echoBody))
    await h.service.stop('idle')
    await h.service.invoke('counter', null)
    await h.service.invoke('counter', null)
    const service = await h.restart()
    expect(service.list().map((t) => [t.name, t.state])).toEqual([['counter', 'running'], ['idle', 'stopped']])
    await expect(service.invoke('counter', null)).resolves.toEqual({ n: 3, version: '1.0.0' })
    await expect(service.invoke('idle', null)).rejects.toMatchObject({ code: 'COORD_TASK_STOPPED' })
  })

  it('marks a task broken at start when its bundle file is gone, and starts the others', async () => {
    const lost = await h.service.install(bundle(manifest('lost'), echoBody))
    await h.service.install(bundle(manifest('fine'), echoBody))
    await h.service.close()
    const { rmSync } = await import('node:fs')
    rmSync(`${h.options.bundleDir}/${lost.digest}.bundle`)
    const service = await h.restart()
    expect(service.get('lost')).toMatchObject({ state: 'broken', lastError: expect.stringContaining('ENOENT') })
    await expect(service.invoke('fine', 1)).resolves.toMatchObject({ payload: 1 })
    await expect(service.invoke('lost', 1)).rejects.toMatchObject({ code: 'COORD_TASK_BROKEN' })
  })

  it('returns the running task unchanged when the same bundle and config are installed again', async () => {
    const bytes = bundle(manifest('echo'), echoBody)
    const first = await h.service.install(bytes)
    const again = await h.service.install(bytes)
    expect(again.installedAt).toBe(first.installedAt)
  })

  it('lets accepted calls finish on close, then refuses new work', async () => {
    const slow = `exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 50)); return event.payload }`
    await h.service.install(bundle(manifest('slow'), slow))
    const calls = [1, 2, 3].map((n) => h.service.invoke('slow', n))
    await h.service.close()
    await expect(Promise.all(calls)).resolves.toEqual([1, 2, 3])
    await expect(h.service.invoke('slow', 4)).rejects.toMatchObject({ code: 'COORD_CLOSED' })
    await expect(h.service.install(bundle(manifest('late'), echoBody))).rejects.toMatchObject({ code: 'COORD_CLOSED' })
  })

  it('keeps the operator config overrides across an upgrade unless new ones are given', async () => {
    const body = `exports.handler = async (event, ctx) => ctx.config`
    const withConfig = (version: string) => manifest('cfg', { version, config: { schema: { type: 'object' }, defaults: { a: 1, b: version } } })
    await h.service.install(bundle(withConfig('1.0.0'), body), { config: { a: 5 } })
    await expect(h.service.invoke('cfg', null)).resolves.toEqual({ a: 5, b: '1.0.0' })
    await h.service.install(bundle(withConfig('1.1.0'), body))
    await expect(h.service.invoke('cfg', null)).resolves.toEqual({ a: 5, b: '1.1.0' })
    await h.service.install(bundle(withConfig('1.2.0'), body), { config: {} })
    await expect(h.service.invoke('cfg', null)).resolves.toEqual({ a: 1, b: '1.2.0' })
  })

  it('logs lifecycle events and task lines to a ring buffer and to followers', async () => {
    const body = `exports.handler = async (event, ctx) => { ctx.log.info('hello', { n: event.payload }); return null }`
    await h.service.install(bundle(manifest('talker'), body))
    const followed: LogEntry[] = []
    const unfollow = h.service.followLogs('talker', (e) => followed.push(e))
    await h.service.invoke('talker', 7)
    unfollow()
    await h.service.invoke('talker', 8)
    expect(followed).toEqual([expect.objectContaining({ source: 'task', level: 'info', msg: 'hello', task: 'talker', version: '1.0.0', fields: { n: 7 } })])
    const tail = h.service.logs('talker', 2)
    expect(tail.map((e) => [e.source, e.msg])).toEqual([['task', 'hello'], ['task', 'hello']])
    const installed = h.service.logs('talker', 100)[0]
    expect(installed).toMatchObject({ source: 'lifecycle', msg: 'task installed', fields: { digest: expect.any(String) } })
    // A first install replaces nothing, so it names no previous version.
    expect(installed?.fields).not.toHaveProperty('previous')
    expect(() => h.service.logs('nobody', 1)).toThrow(expect.objectContaining({ code: 'COORD_TASK_NOT_FOUND' }))
  })
})

describe('failed installs leave the installed version untouched', () => {
  let h: TaskHarness
  beforeEach(async () => {
    h = await taskHarness()
    await h.service.install(bundle(manifest('app', { config: { schema: { type: 'object', properties: { level: { type: 'integer' } } }, defaults: { level: 1 } } }), echoBody))
  })
  afterEach(async () => {
    await h.close()
  })

  const stillV1 = async (): Promise<void> => {
    expect(h.service.get('app')).toMatchObject({ version: '1.0.0', state: 'running' })
    await expect(h.service.invoke('app', 'x')).resolves.toEqual({ version: '1.0.0', payload: 'x' })
    const rows = h.db.prepare('SELECT name, manifest FROM tasks').all() as Array<{ name: string; manifest: string }>
    expect(rows.map((r) => [r.name, (JSON.parse(r.manifest) as { version: string }).version])).toEqual([['app', '1.0.0']])
    expect(readdirSync(h.options.bundleDir)).toHaveLength(1)
  }

  it('refuses a damaged bundle with a BundleError', async () => {
    const bytes = bundle(manifest('app', { version: '2.0.0' }), echoBody)
    await expect(h.service.install(bytes.slice(0, bytes.length - 10))).rejects.toMatchObject({ code: 'COORD_BUNDLE_MALFORMED' })
    await stillV1()
  })

  it('refuses a bundle larger than maxBundleBytes', async () => {
    const big = bundle(manifest('app', { version: '2.0.0' }), `${echoBody}; exports.pad = '${'x'.repeat(1024 * 1024)}'`)
    await expect(h.service.install(big)).rejects.toMatchObject({ code: 'COORD_BUNDLE_TOO_LARGE' })
    await stillV1()
  })

  it('refuses a version whose code does not load, with the SandboxError', async () => {
    await expect(h.service.install(bundle(manifest('app', { version: '2.0.0' }), `throw new Error('boom at load')`))).rejects.toMatchObject({ code: 'COORD_SANDBOX_LOAD' })
    await stillV1()
  })

  it('refuses a version whose long-lived start() throws', async () => {
    const body = `exports.start = async () => { throw new Error('no start') }; exports.handler = async () => 1`
    await expect(h.service.install(bundle(manifest('app', { version: '2.0.0', mode: 'long-lived' }), body))).rejects.toMatchObject({ code: 'COORD_SANDBOX_THREW' })
    await stillV1()
  })

  it('refuses config overrides the schema rejects', async () => {
    const v2 = bundle(manifest('app', { version: '2.0.0', config: { schema: { type: 'object', properties: { level: { type: 'integer' } } }, defaults: { level: 1 } } }), echoBody)
    const err = await h.service.install(v2, { config: { level: 'high' } }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'COORD_TASK_CONFIG_INVALID', message: expect.stringContaining('config.level') })
    await stillV1()
  })

  it('leaves nothing behind when a first install fails', async () => {
    const body = `exports.start = async (ctx) => { await ctx.state.set('k', 1); throw new Error('late') }; exports.handler = async () => 1`
    await expect(h.service.install(bundle(manifest('fresh', { mode: 'long-lived' }), body))).rejects.toMatchObject({ code: 'COORD_SANDBOX_THREW' })
    expect(h.service.get('fresh')).toBeUndefined()
    expect(h.db.prepare("SELECT COUNT(*) AS n FROM task_kv WHERE task = 'fresh'").get()).toEqual({ n: 0 })
    await stillV1()
  })
})

describe('bundle trust', () => {
  const trusted = ed25519Keys()
  const stranger = ed25519Keys()
  let h: TaskHarness
  beforeEach(async () => {
    h = await taskHarness({ trust: { trustedKeys: [trusted.publicKeyPem], allowUnsigned: false } })
  })
  afterEach(async () => {
    await h.close()
  })

  it('installs a bundle signed by a trusted key and reports the signer', async () => {
    const info = await h.service.install(bundle(manifest('signed'), echoBody, trusted))
    expect(info.signer).toBe(keyId(trusted.publicKeyPem))
    expect(h.service.get('signed')?.signer).toBe(info.signer)
  })

  it('refuses unsigned bundles and bundles signed by an unknown key', async () => {
    await expect(h.service.install(bundle(manifest('plain'), echoBody))).rejects.toMatchObject({ code: 'COORD_BUNDLE_UNSIGNED' })
    await expect(h.service.install(bundle(manifest('plain'), echoBody, stranger))).rejects.toMatchObject({ code: 'COORD_BUNDLE_UNTRUSTED' })
    expect(h.service.list()).toEqual([])
  })

  it('does not start a stored task at restart once its key is no longer trusted', async () => {
    await h.service.install(bundle(manifest('signed'), echoBody, trusted))
    const service = await h.restart({ trust: { trustedKeys: [stranger.publicKeyPem], allowUnsigned: false } })
    expect(service.get('signed')).toMatchObject({ state: 'broken', lastError: expect.stringContaining('COORD_BUNDLE_UNTRUSTED') })
  })
})
