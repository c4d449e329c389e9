/**
 * The deploy agent in-process, on a real task service, outbox and journal, with the cloud played
 * by a fake link and a small HTTP server serving bundles by digest (with Range): the details the
 * fleet test cannot reach cheaply (taking over and giving back local tasks, resumed and corrupt
 * downloads, the health window, recovery at the row level).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { serveImmutableFile } from '../../cloud-shim/api/serve-file.js'
import { Outbox, type LinkState } from '../../coordinator/cloud/index.js'
import { systemClock } from '../../coordinator/core/clock.js'
import { silentLogger } from '../../coordinator/core/log.js'
import { DeployAgent, DeployJournal, recoverJournal } from '../../coordinator/deploy/index.js'
import { previousSet } from '../../coordinator/deploy/apply.js'
import { partFile } from '../../coordinator/deploy/fetch.js'
import { decodeBundle, deploymentTopic, type DeploymentReport, type DeploymentTask, type TaskManifestInput } from '../../coordinator/protocol/index.js'
import { BundleFiles } from '../../coordinator/tasks/bundle-files.js'
import { TaskStore } from '../../coordinator/tasks/task-store.js'
import { bundle, eventually, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'

class FakeLink {
  state: LinkState = 'connected'
  readonly handlers = new Map<string, (topic: string, payload: Buffer) => void>()
  async subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>> {
    this.handlers.set(filter, handler)
    return async () => void this.handlers.delete(filter)
  }
  onState(): () => void {
    return () => {}
  }
  publishNow(): boolean {
    return true
  }
  deliver(topic: string, body: unknown): void {
    this.handlers.get(topic)?.(topic, Buffer.from(JSON.stringify(body)))
  }
}

const THING = 'gw-1'
function task(name: string, version: string, extra: Partial<TaskManifestInput> = {}, body = 'exports.handler = async () => 1'): { bytes: Uint8Array; digest: string } {
  const bytes = bundle(manifest(name, { version, ...extra }), body)
  const decoded = decodeBundle(bytes, { maxBytes: 1 << 20 })
  if (!decoded.ok) throw decoded.error
  return { bytes, digest: decoded.bundle.digest }
}

describe('deploy agent (in-process)', () => {
  let h: TaskHarness
  let journal: DeployJournal
  let outbox: Outbox
  let link: FakeLink
  let agent: DeployAgent
  let server: Server
  let baseUrl: string
  const ranges: string[] = []
  /** Digests the server answers only after this long: a download still running when superseded. */
  const slow = new Map<string, number>()
  const served = (): string => join(h.dir, 'served')

  const serve = (digest: string, bytes: Uint8Array): void => writeFileSync(join(served(), digest), bytes)
  const reports = (): DeploymentReport[] =>
    outbox.peek(1000).map((msg) => (JSON.parse(msg.payload.toString()) as { state: { reported: DeploymentReport } }).state.reported)
  const finalOf = async (revision: number): Promise<DeploymentReport> => {
    await eventually(() => reports().some((r) => r.revision === revision && ['succeeded', 'failed', 'rolled-back', 'rollback-failed'].includes(r.status)), 10_000, `revision ${revision} to end`)
    return reports().filter((r) => r.revision === revision).at(-1) as DeploymentReport
  }
  const desire = (revision: number, tasks: DeploymentTask[]): void =>
    link.deliver(deploymentTopic(THING, 'get', 'accepted'), { state: { desired: { deploymentId: `dep-${revision}`, revision, tasks, bundleBaseUrl: baseUrl } } })
  const versions = (): Record<string, string> => Object.fromEntries(h.service.list().map((t) => [t.name, `${t.version} ${t.state}`]))

  beforeEach(async () => {
    h = await taskHarness()
    mkdirSync(served(), { recursive: true })
    journal = new DeployJournal(h.db, systemClock)
    await h.restart({ retainBundles: () => journal.retainedDigests() })
    outbox = Outbox.open(join(h.dir, 'outbox.db'))
    link = new FakeLink()
    server = createServer((req, res) => {
      const digest = (req.url ?? '').split('/').at(-1) ?? ''
      ranges.push(req.headers.range ?? '')
      setTimeout(() => serveImmutableFile(req, res, join(served(), digest), digest), slow.get(digest) ?? 0)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/by-digest`
    ranges.length = 0
    agent = await DeployAgent.start({
      thingName: THING, link, outbox, tasks: h.service, store: new TaskStore(h.db), files: new BundleFiles(join(h.dir, 'bundles')), journal,
      tmpDir: join(h.dir, 'bundles', 'tmp'), maxBundleBytes: 1 << 20, healthCheckMs: 300, downloadAttempts: 2, clock: systemClock, log: silentLogger(),
    })
  })
  afterEach(async () => {
    await agent.close()
    outbox.close()
    slow.clear()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await h.close()
  })

  it('should take a local task over and give it back as it was when no deployment names it any more', async () => {
    await h.service.install(task('shared', '1.0.0').bytes, { config: { mine: true } })
    await h.service.install(task('keep', '1.0.0').bytes)
    const [shared, extra] = [task('shared', '2.0.0'), task('extra', '1.0.0')]
    serve(shared.digest, shared.bytes)
    serve(extra.digest, extra.bytes)
    desire(1, [{ name: 'shared', version: '2.0.0', digest: shared.digest, config: {} }, { name: 'extra', version: '1.0.0', digest: extra.digest, config: {} }])
    expect((await finalOf(1)).status).toBe('succeeded')
    expect(versions()).toEqual({ extra: '1.0.0 running', keep: '1.0.0 running', shared: '2.0.0 running' })
    expect(reports().filter((r) => r.revision === 1).map((r) => r.status)).toEqual(['downloading', 'staging', 'applying', 'health-check', 'succeeded'])
    // The cloud rolls a first deployment back with an empty set.
    desire(2, [])
    expect((await finalOf(2)).status).toBe('succeeded')
    expect(versions()).toEqual({ keep: '1.0.0 running', shared: '1.0.0 running' })
    expect(new TaskStore(h.db).get('shared')?.config).toEqual({ mine: true })
    expect(journal.managed()).toEqual({})
  })

  it('should resume a partial download with Range, and refuse bytes that are not the digest asked for', async () => {
    const t = task('big', '1.0.0', {}, `exports.pad = '${'x'.repeat(20_000)}'; exports.handler = async () => 1`)
    serve(t.digest, t.bytes)
    mkdirSync(join(h.dir, 'bundles', 'tmp'), { recursive: true })
    writeFileSync(partFile(join(h.dir, 'bundles', 'tmp'), t.digest), t.bytes.subarray(0, 10_000))
    desire(1, [{ name: 'big', version: '1.0.0', digest: t.digest, config: {} }])
    expect((await finalOf(1)).status).toBe('succeeded')
    expect(ranges).toEqual(['bytes=10000-'])
    const fake = task('evil', '1.0.0')
    serve(fake.digest, task('evil', '6.6.6').bytes)
    desire(2, [{ name: 'evil', version: '1.0.0', digest: fake.digest, config: {} }])
    const failed = await finalOf(2)
    expect(failed).toMatchObject({ status: 'failed', error: expect.stringContaining('COORD_BUNDLE_DIGEST_MISMATCH') })
    expect(failed.tasks).toEqual([expect.objectContaining({ name: 'evil', state: 'failed' })])
    expect(versions()).toEqual({ big: '1.0.0 running' })
  })

  it('should roll back when a new task breaks within the health window, putting the previous version back', async () => {
    const good = task('worker', '1.0.0')
    const bad = task('worker', '2.0.0', { triggers: [{ type: 'schedule', every: '100ms' }] }, 'exports.handler = async () => { throw new Error("sensor gone") }')
    serve(good.digest, good.bytes)
    serve(bad.digest, bad.bytes)
    desire(1, [{ name: 'worker', version: '1.0.0', digest: good.digest, config: {} }])
    await finalOf(1)
    await agent.close()
    agent = await DeployAgent.start({
      thingName: THING, link, outbox, tasks: h.service, store: new TaskStore(h.db), files: new BundleFiles(join(h.dir, 'bundles')), journal,
      tmpDir: join(h.dir, 'bundles', 'tmp'), maxBundleBytes: 1 << 20, healthCheckMs: 5000, downloadAttempts: 2, clock: systemClock, log: silentLogger(),
    })
    desire(2, [{ name: 'worker', version: '2.0.0', digest: bad.digest, config: {} }])
    const r = await finalOf(2)
    expect(r).toMatchObject({ status: 'rolled-back', error: expect.stringContaining('sensor gone') })
    expect(r.tasks).toEqual([expect.objectContaining({ name: 'worker', state: 'failed' })])
    expect(versions()).toEqual({ worker: '1.0.0 running' })
  })

  it('should drop a revision still downloading as soon as a newer one arrives', async () => {
    const [old, fresh] = [task('app', '1.0.0'), task('app', '2.0.0')]
    serve(old.digest, old.bytes)
    serve(fresh.digest, fresh.bytes)
    slow.set(old.digest, 5000)
    desire(1, [{ name: 'app', version: '1.0.0', digest: old.digest, config: {} }])
    await eventually(() => reports().some((r) => r.revision === 1), 5000, 'revision 1 to start')
    desire(2, [{ name: 'app', version: '2.0.0', digest: fresh.digest, config: {} }])
    expect((await finalOf(2)).status).toBe('succeeded')
    expect(journal.get(1)?.phase).toBe('superseded')
    expect(reports().filter((r) => r.revision === 1).map((r) => r.status)).toEqual(['downloading'])
    expect(versions()).toEqual({ app: '2.0.0 running' })
  })

  it('should resume a revision a restart interrupted while downloading', async () => {
    await agent.close()
    const t = task('app', '1.0.0')
    serve(t.digest, t.bytes)
    journal.begin({ deploymentId: 'dep-3', revision: 3, tasks: [{ name: 'app', version: '1.0.0', digest: t.digest, config: {} }], bundleBaseUrl: baseUrl }, [])
    agent = await DeployAgent.start({
      thingName: THING, link, outbox, tasks: h.service, store: new TaskStore(h.db), files: new BundleFiles(join(h.dir, 'bundles')), journal,
      tmpDir: join(h.dir, 'bundles', 'tmp'), maxBundleBytes: 1 << 20, healthCheckMs: 300, downloadAttempts: 2, clock: systemClock, log: silentLogger(),
    })
    expect((await finalOf(3)).status).toBe('succeeded')
    expect(versions()).toEqual({ app: '1.0.0 running' })
  })

  it('should restore the recorded rows before tasks start when an apply was cut short', async () => {
    await agent.close()
    const store = new TaskStore(h.db)
    const v1 = task('app', '1.0.0')
    await h.service.install(v1.bytes)
    const [v2, added] = [task('app', '2.0.0'), task('added', '1.0.0')]
    const target = [{ name: 'app', version: '2.0.0', digest: v2.digest, config: {} }, { name: 'added', version: '1.0.0', digest: added.digest, config: {} }]
    journal.begin({ deploymentId: 'dep-9', revision: 9, tasks: target, bundleBaseUrl: baseUrl }, [])
    journal.startApplying(9, previousSet(store, journal.managed(), target), [])
    await h.service.install(v2.bytes)
    await h.service.install(added.bytes)
    await h.service.close()
    const ended = recoverJournal(journal, store, silentLogger())
    expect(ended.map((e) => [e.revision, e.phase])).toEqual([[9, 'rolled-back']])
    await h.restart({ retainBundles: () => journal.retainedDigests() })
    expect(versions()).toEqual({ app: '1.0.0 running' })
    expect(journal.get(9)).toMatchObject({ phase: 'rolled-back', error: "the coordinator stopped during 'applying'; the previous task set was restored at start-up" })
    agent = await DeployAgent.start({
      thingName: THING, link, outbox, tasks: h.service, store, files: new BundleFiles(join(h.dir, 'bundles')), journal,
      tmpDir: join(h.dir, 'bundles', 'tmp'), maxBundleBytes: 1 << 20, healthCheckMs: 300, downloadAttempts: 2, clock: systemClock, log: silentLogger(),
    })
    expect(reports().at(-1)).toMatchObject({ deploymentId: 'dep-9', revision: 9, status: 'rolled-back' })
  })
})
