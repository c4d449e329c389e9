/**
 * Fleet deployments end to end: a cloud shim and four `edge-coordinator start --join` processes.
 * The scenarios run in order and build on each other's state, as a fleet's history would.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killHard } from '../helpers/daemon.js'
import { EDGE_BIN, runBin, startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { http, launch, localTasks, provision, startMember, waitFor, type FleetMember } from '../helpers/fleet.js'
import { bundle, ed25519Keys, manifest } from '../helpers/tasks.js'
import { tempDir } from '../helpers/tmp.js'

interface CoordinatorView { name: string; state: string; status: string | null; error: string | null; missingTags: string[]; startedAt: string | null; finishedAt: string | null }
interface DeploymentView { id: string; status: string; reason: string | null; coordinators: CoordinatorView[] }

const SETTLED = new Set(['succeeded', 'completed-with-failures', 'aborted', 'rolled-back', 'rollback-failed', 'cancelled', 'superseded'])
const rollout = { maxConcurrent: 1, failureThreshold: { count: 1 }, perCoordinatorTimeoutMs: 60_000, onFailure: 'rollback' }
const hello = (version: string, signer: { privateKeyPem: string }): Uint8Array =>
  bundle(manifest('hello', { version }), `exports.handler = async () => ({ version: '${version}' })`, signer)

describe('fleet deployments: cloud shim + coordinator processes', () => {
  const tmp = tempDir('edge-deploy-e2e-')
  const cloudDir = join(tmp.dir, 'cloud')
  const keyA = ed25519Keys()
  const keyB = ed25519Keys()
  const members = new Map<string, FleetMember>()
  let cloud: RunningCloudShim
  const url = (path: string): string => `${cloud.httpUrl}${path}`
  const m = (name: string): FleetMember => members.get(name) as FleetMember

  const deploy = async (body: Record<string, unknown>): Promise<DeploymentView> => {
    const r = await http<DeploymentView>('POST', url('/v1/deployments'), body)
    if (r.status !== 201) throw new Error(`deployment refused: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }
  const status = async (id: string): Promise<DeploymentView> => (await http<DeploymentView>('GET', url(`/v1/deployments/${id}`))).body
  const settled = (id: string, timeoutMs = 45_000): Promise<DeploymentView> =>
    waitFor(async () => {
      const d = await status(id)
      return SETTLED.has(d.status) && !d.coordinators.some((c) => c.state === 'in-progress' || c.state === 'rolling-back') ? d : undefined
    }, timeoutMs, `deployment ${id} to settle`)
  const states = (d: DeploymentView): Record<string, string> => Object.fromEntries(d.coordinators.map((c) => [c.name, c.state]))

  beforeAll(async () => {
    const keyFile = (k: { publicKeyPem: string }, name: string): string => {
      writeFileSync(join(tmp.dir, name), k.publicKeyPem)
      return join(tmp.dir, name)
    }
    const [a, b] = [keyFile(keyA, 'a.pub'), keyFile(keyB, 'b.pub')]
    cloud = await startCloudShim({ bundles: { trustedKeys: [keyA.publicKeyPem, keyB.publicKeyPem], allowUnsigned: false, maxBundleBytes: 1 << 20 } }, { dataDir: cloudDir })
    const plan: Array<[string, string, string[], number]> = [['gw-a', 'north', [a, b], 500], ['gw-b', 'north', [a, b], 2500], ['gw-c', 'north', [a], 500], ['gw-d', 'south', [a, b], 500]]
    await Promise.all(plan.map(async ([name, site, keys, healthCheckMs]) => {
      const joinFile = await provision(cloud.httpUrl, tmp.dir, name, { site }, ['gpio'])
      members.set(name, await startMember({ name, dir: tmp.dir, joinFile, trustedKeyFiles: keys, healthCheckMs }))
    }))
    const crash = bundle(manifest('crash', { mode: 'long-lived' }), `exports.start = async () => { throw new Error('cannot open /dev/ttyUSB0') }; exports.handler = async () => 1`, keyA)
    const cam = bundle(manifest('cam', { requires: ['camera'] }), `exports.handler = async () => 'cam'`, keyA)
    for (const file of [hello('1.0.0', keyA), hello('2.0.0', keyB), hello('3.0.0', keyA), crash, cam]) {
      expect((await http('POST', url('/v1/bundles'), file)).status).toBe(201)
    }
    expect((await http('POST', url('/v1/groups'), { name: 'north', query: 'attributes.site = "north"' })).status).toBe(201)
    // A task an operator pushed by hand: no deployment may ever remove it.
    const local = bundle(manifest('local-only'), 'exports.handler = async () => 0', keyA)
    expect((await http('POST', `${m('gw-a').httpUrl}/v1/tasks`, local)).status).toBe(201)
  }, 90_000)

  afterAll(async () => {
    await Promise.all([...members.values()].map((x) => killHard(x.daemon)))
    await cloud?.stop({ keepData: true })
    tmp.remove()
  })

  it('should roll a deployment out to a dynamic group one coordinator at a time (edge deploy create + status --watch)', async () => {
    const edge = (...args: string[]) => runBin(EDGE_BIN, [...args, '--cloud', cloud.httpUrl, '--json'], {}, 60_000)
    const created = await edge('deploy', 'create', '--target', 'group:north', '--bundle', 'hello@1.0.0', '--max-concurrent', '1', '--failure-threshold', '1', '--timeout', '60s')
    expect(created.code).toBe(0)
    const { id } = JSON.parse(created.stdout) as DeploymentView
    const watched = await edge('deploy', 'status', id, '--watch', '--interval', '200ms')
    expect(watched.code).toBe(0)
    const last = JSON.parse(watched.stdout.trim().split('\n').at(-1) ?? '{}') as DeploymentView
    expect(last.status).toBe('succeeded')
    expect(states(last)).toEqual({ 'gw-a': 'succeeded', 'gw-b': 'succeeded', 'gw-c': 'succeeded' })
    // maxConcurrent 1: each coordinator started only after the previous one finished.
    const spans = last.coordinators.map((c) => [Date.parse(c.startedAt ?? ''), Date.parse(c.finishedAt ?? '')] as const)
    for (let i = 1; i < spans.length; i++) expect(spans[i]?.[0]).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? Infinity)
    for (const name of ['gw-b', 'gw-c']) expect(await localTasks(m(name))).toEqual({ hello: '1.0.0 running' })
    expect(await localTasks(m('gw-a'))).toEqual({ hello: '1.0.0 running', 'local-only': '1.0.0 running' })
    expect(await localTasks(m('gw-d'))).toEqual({})
    const ls = await edge('deploy', 'ls')
    expect((JSON.parse(ls.stdout) as DeploymentView[]).map((d) => d.id)).toEqual([id])
  }, 90_000)

  it('should abort when one coordinator refuses a bundle and roll back the coordinators already moved', async () => {
    const d = await deploy({ target: { group: 'north' }, bundles: [{ name: 'hello', version: '2.0.0' }], rollout })
    const done = await settled(d.id)
    expect(done).toMatchObject({ status: 'rolled-back', reason: 'failure threshold reached; rolling back' })
    expect(states(done)).toEqual({ 'gw-a': 'rolled-back', 'gw-b': 'rolled-back', 'gw-c': 'failed' })
    const c = done.coordinators.find((x) => x.name === 'gw-c')
    expect(c).toMatchObject({ status: 'failed', error: expect.stringContaining('COORD_BUNDLE_UNTRUSTED') })
    expect(await localTasks(m('gw-a'))).toEqual({ hello: '1.0.0 running', 'local-only': '1.0.0 running' })
    for (const name of ['gw-b', 'gw-c']) expect(await localTasks(m(name))).toEqual({ hello: '1.0.0 running' })
  }, 90_000)

  it('should restore the previous set on the coordinator itself when a task of the new set fails to start', async () => {
    const d = await deploy({ target: { thing: 'gw-a' }, bundles: [{ name: 'hello', version: '3.0.0' }, { name: 'crash', version: '1.0.0' }], rollout })
    const done = await settled(d.id)
    expect(done.status).toBe('rolled-back')
    expect(done.coordinators[0]).toMatchObject({ state: 'failed', status: 'rolled-back', error: expect.stringContaining('cannot open /dev/ttyUSB0') })
    expect(await localTasks(m('gw-a'))).toEqual({ hello: '1.0.0 running', 'local-only': '1.0.0 running' })
  }, 60_000)

  it('should report coordinators lacking a required capability as not eligible, with the missing tags', async () => {
    expect((await http('PATCH', url('/v1/things/gw-b'), { addTags: ['camera'] })).status).toBe(200)
    const d = await deploy({ target: { group: 'north' }, bundles: [{ name: 'hello', version: '1.0.0' }, { name: 'cam', version: '1.0.0' }], rollout: { ...rollout, maxConcurrent: 3 } })
    const done = await settled(d.id)
    expect(done.status).toBe('succeeded')
    expect(states(done)).toEqual({ 'gw-a': 'not-eligible', 'gw-b': 'succeeded', 'gw-c': 'not-eligible' })
    expect(done.coordinators.find((x) => x.name === 'gw-a')).toMatchObject({ missingTags: ['camera'], error: 'lacks capability tag(s) camera' })
    expect(await localTasks(m('gw-b'))).toEqual({ cam: '1.0.0 running', hello: '1.0.0 running' })
  }, 60_000)

  it('should refuse a deployment outside a group snapshot, also to a thing in that group, with the reason', async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString()
    expect((await http('POST', url('/v1/groups/north/snapshot'), { bundles: ['hello@1.0.0', 'cam@1.0.0'], until })).status).toBe(201)
    for (const target of [{ group: 'north' }, { thing: 'gw-c' }]) {
      const r = await http<{ error: string; message: string }>('POST', url('/v1/deployments'), { target, bundles: [{ name: 'hello', version: '3.0.0' }] })
      expect(r.status).toBe(409)
      expect(r.body).toMatchObject({ code: 'COORD_DEPLOY_NOT_APPROVED', message: expect.stringContaining('not approved: hello@3.0.0') })
    }
    expect((await http('DELETE', url('/v1/groups/north/snapshot'))).status).toBe(200)
  })

  it('should let a newer deployment supersede one in flight', async () => {
    const older = await deploy({ target: { group: 'north' }, bundles: [{ name: 'hello', version: '3.0.0' }], rollout })
    await waitFor(async () => ((await status(older.id)).coordinators[0]?.status !== null ? true : undefined), 20_000, 'the first coordinator to report')
    const newer = await deploy({ target: { group: 'north' }, bundles: [{ name: 'hello', version: '3.0.0' }], rollout: { ...rollout, maxConcurrent: 3 } })
    expect((await status(older.id)).status).toBe('superseded')
    const done = await settled(newer.id)
    expect(done.status).toBe('succeeded')
    expect(states(done)).toEqual({ 'gw-a': 'succeeded', 'gw-b': 'succeeded', 'gw-c': 'succeeded' })
    for (const name of ['gw-b', 'gw-c']) expect(await localTasks(m(name))).toEqual({ hello: '3.0.0 running' })
  }, 90_000)

  it('should roll back a coordinator killed mid-deployment when it starts again, and say so', async () => {
    const d = await deploy({ target: { thing: 'gw-b' }, bundles: [{ name: 'hello', version: '1.0.0' }], rollout })
    await waitFor(async () => ((await status(d.id)).coordinators[0]?.status === 'health-check' ? true : undefined), 20_000, 'gw-b in its health check')
    await killHard(m('gw-b').daemon)
    members.set('gw-b', await launch('gw-b', tmp.dir, m('gw-b').args))
    const done = await settled(d.id)
    expect(done.coordinators[0]).toMatchObject({ state: 'failed', status: 'rolled-back', error: expect.stringContaining("stopped during 'health-check'") })
    expect(await localTasks(m('gw-b'))).toEqual({ hello: '3.0.0 running' })
  }, 60_000)

  it('should give a coordinator that joins the group later the group\'s current deployment', async () => {
    expect((await http('PATCH', url('/v1/things/gw-d'), { attributes: { site: 'north' } })).status).toBe(200)
    await waitFor(async () => ((await localTasks(m('gw-d')))['hello'] === '3.0.0 running' ? true : undefined), 30_000, 'gw-d to run hello@3.0.0')
  }, 45_000)

  it('should start the last good set with the cloud down, and finish a rollout once the cloud shim is back', async () => {
    const d = await deploy({ target: { group: 'north' }, bundles: [{ name: 'hello', version: '1.0.0' }], rollout })
    await waitFor(async () => ((await status(d.id)).coordinators[0]?.state === 'succeeded' ? true : undefined), 30_000, 'gw-a to succeed')
    const ports = { mqtt: { port: cloud.endpoints.mqtt?.port }, mqtts: { port: cloud.endpoints.mqtts?.port }, http: { port: cloud.endpoints.http?.port } }
    await cloud.stop({ keepData: true })
    await killHard(m('gw-a').daemon)
    members.set('gw-a', await launch('gw-a', tmp.dir, m('gw-a').args))
    expect(await localTasks(m('gw-a'))).toEqual({ hello: '1.0.0 running', 'local-only': '1.0.0 running' })
    cloud = await startCloudShim({ listeners: ports, bundles: { trustedKeys: [keyA.publicKeyPem, keyB.publicKeyPem], allowUnsigned: false, maxBundleBytes: 1 << 20 } }, { dataDir: cloudDir })
    const done = await settled(d.id, 60_000)
    expect(done.status).toBe('succeeded')
    expect(states(done)).toEqual({ 'gw-a': 'succeeded', 'gw-b': 'succeeded', 'gw-c': 'succeeded', 'gw-d': 'succeeded' })
    for (const name of ['gw-b', 'gw-c', 'gw-d']) expect(await localTasks(m(name))).toEqual({ hello: '1.0.0 running' })
  }, 120_000)
})
