/**
 * The operator CLIs as built binaries: `edge-cloud start` as a real daemon process, and `edge`
 * against it with --json output for scripts.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLOUD_BIN, EDGE_BIN, makeBundle, runBin, startCloudDaemon, type CliResult, type CloudDaemon } from '../helpers/cloud-shim.js'
import { tempDir } from '../helpers/tmp.js'

const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

describe('edge CLI against a running edge-cloud daemon', () => {
  const tmp = tempDir('edge-cloud-cli-')
  let daemon: CloudDaemon
  let cloud: string

  const edge = (...args: string[]): Promise<CliResult> => runBin(EDGE_BIN, [...args, '--cloud', cloud])
  async function edgeJson<T>(...args: string[]): Promise<T> {
    const r = await edge(...args, '--json')
    if (r.code !== 0) throw new Error(`edge ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  beforeAll(async () => {
    const config = join(tmp.dir, 'cloud.json')
    writeFileSync(config, JSON.stringify({ bundles: { trustedKeys: [], allowUnsigned: true, maxBundleBytes: 1048576 } }))
    daemon = await startCloudDaemon(['--config', config, '--data-dir', join(tmp.dir, 'data'), '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0'])
    cloud = `http://127.0.0.1:${(daemon.ready['endpoints'] as { http: { port: number } }).http.port}`
    for (const [name, site] of [['hub-1', 'north'], ['hub-2', 'south']] as const) {
      const r = await runBin(CLOUD_BIN, ['coordinators', 'add', name, '--data-dir', join(tmp.dir, 'data'), '--attr', `site=${site}`, '--tag', 'gpio', '--out', tmp.dir])
      expect(r.code).toBe(0)
    }
  })

  afterAll(async () => {
    await daemon?.stop()
    tmp.remove()
  })

  it('should print the package.json version for edge --version and edge-cloud --version, exiting 0', async () => {
    for (const bin of [EDGE_BIN, CLOUD_BIN]) {
      const r = await runBin(bin, ['--version'])
      expect(r.code).toBe(0)
      expect(r.stdout.trim()).toBe(PKG_VERSION)
    }
  })

  it('should answer things list like things ls, and coordinators ls like coordinators list', async () => {
    expect(await edgeJson('things', 'list')).toEqual(await edgeJson('things', 'ls'))
    const dataDir = join(tmp.dir, 'data')
    const list = await runBin(CLOUD_BIN, ['coordinators', 'list', '--data-dir', dataDir, '--json'])
    const ls = await runBin(CLOUD_BIN, ['coordinators', 'ls', '--data-dir', dataDir, '--json'])
    expect(ls.code).toBe(0)
    expect(ls.stdout).toBe(list.stdout)
  })

  it('should list the things that `edge-cloud coordinators add` registered, as JSON and as a table', async () => {
    const things = await edgeJson<Array<{ name: string; kind: string; attributes: Record<string, string> }>>('things', 'ls')
    expect(things.map((t) => [t.name, t.kind, t.attributes['site']])).toEqual([['hub-1', 'coordinator', 'north'], ['hub-2', 'coordinator', 'south']])
    const table = await runBin(EDGE_BIN, ['things'], { EDGE_CLOUD: cloud })
    expect(table.stdout).toMatch(/^NAME\s+KIND\s+COORDINATOR\s+TAGS\s+ATTRIBUTES\nhub-1\s+coordinator\s+-\s+gpio\s+site=north\n/)
  })

  it('should create groups, list them with members, and follow a thing whose attributes change', async () => {
    expect((await edge('groups', 'create', 'north', '--query', 'attributes.site = "north" AND tags HAS gpio')).code).toBe(0)
    expect((await edge('groups', 'create', 'pilot', '--members', 'hub-2')).code).toBe(0)
    const groups = await edgeJson<Array<{ name: string; kind: string; members: string[] }>>('groups', 'ls')
    expect(groups.map((g) => [g.name, g.kind, g.members])).toEqual([['north', 'dynamic', ['hub-1']], ['pilot', 'static', ['hub-2']]])
    await edgeJson('things', 'set', 'hub-2', '--attr', 'site=north', '--tag', 'camera')
    expect((await edgeJson<{ members: string[] }>('groups', 'show', 'north')).members).toEqual(['hub-1', 'hub-2'])
    expect((await edgeJson<{ groups: string[] }>('things', 'show', 'hub-2')).groups).toEqual(['north', 'pilot'])
    const preview = await edgeJson<Array<{ name: string }>>('groups', 'preview', 'tags HAS camera')
    expect(preview.map((t) => t.name)).toEqual(['hub-2'])
  })

  it('should print one error line with the position of a query mistake, or the missing thing, and exit 1', async () => {
    const bad = await edge('groups', 'preview', 'tags HAS')
    expect(bad).toMatchObject({ code: 1, stdout: '' })
    expect(bad.stderr).toBe("edge: error (400): query error at position 8: expected a value after 'HAS', found the end of the query\n")
    const missing = await edge('things', 'show', 'nobody')
    expect(missing.stderr).toBe('edge: error (404): no thing named "nobody"\n')
  })

  it('should push a bundle with a progress line, then list and show it', async () => {
    const file = join(tmp.dir, 'blinker.bundle')
    writeFileSync(file, makeBundle({ name: 'blinker', version: '0.3.0', requires: ['gpio'], padding: 200_000 }))
    const pushed = await edge('bundles', 'push', file, '--progress', '--json')
    expect(pushed.code).toBe(0)
    expect(pushed.stderr).toMatch(/pushing blinker\.bundle {2}195\.\d KiB \/ 195\.\d KiB {2}100% {2}\S+ \S*B\/s\n$/)
    expect(JSON.parse(pushed.stdout)).toMatchObject({ name: 'blinker', version: '0.3.0', signer: null, created: true })
    expect(await edgeJson('bundles', 'ls')).toMatchObject([{ name: 'blinker', versions: 1, latest: { version: '0.3.0', requires: ['gpio'] } }])
    expect(await edgeJson('bundles', 'show', 'blinker')).toMatchObject([{ version: '0.3.0' }])
  })

  it('should read and change cloud shadows', async () => {
    const updated = await edge('shadow', 'update', 'hub-1', '--payload', '{"state":{"desired":{"fan":"on"}}}')
    expect(updated.code).toBe(0)
    expect(JSON.parse(updated.stdout)).toMatchObject({ state: { desired: { fan: 'on' } }, version: 1 })
    expect(await edgeJson('shadow', 'get', 'hub-1')).toMatchObject({ state: { desired: { fan: 'on' }, delta: { fan: 'on' } }, version: 1 })
  })
})
