import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/devices-cli.js'
import { killHard, startDaemon, type Daemon } from '../helpers/daemon.js'
import { tempDir } from '../helpers/tmp.js'

const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

describe('edge-coordinator CLI', () => {
  const tmp = tempDir()
  const dataDir = join(tmp.dir, 'data')
  let daemon: Daemon

  beforeAll(async () => {
    daemon = await startDaemon(['--data-dir', dataDir])
  })
  afterAll(async () => {
    await killHard(daemon)
    tmp.remove()
  })

  it('prints help for the program and each command', async () => {
    const top = await runCli(['--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/start .*\n.*certs.*\n.*devices.*\n.*shadow/s)
    const start = await runCli(['start', '--help'])
    expect(start.stdout).toContain('--mqtts-port <n>')
  })

  it('refuses a bad config naming the key and exits 1 without starting', async () => {
    const config = join(tmp.dir, 'bad.json')
    writeFileSync(config, JSON.stringify({ listeners: { mqtt: { host: '127.0.0.1', port: 70000 } } }))
    const r = await runCli(['start', '--config', config, '--data-dir', join(tmp.dir, 'unused')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/listeners\.mqtt\.port: .*<=65535/)
  })

  it('refuses a bad port option with a clear message', async () => {
    const r = await runCli(['start', '--mqtt-port', 'abc'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/expected a port number 0-65535, got 'abc'/)
  })

  it('refuses a policy resource that is not a valid filter, naming policy and statement', async () => {
    const config = join(tmp.dir, 'policy.json')
    writeFileSync(config, JSON.stringify({ policies: [{ name: 'ops', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['a/#/b'] }] }] }))
    const r = await runCli(['start', '--config', config, '--data-dir', join(tmp.dir, 'unused2'), '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/policy "ops" statement 0 resource "a\/#\/b"/)
  })

  it('prints the package.json version for --version and exits 0', async () => {
    const r = await runCli(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(PKG_VERSION)
  })

  it('answers devices ls like devices list, and devices rm like devices remove', async () => {
    for (const name of ['alias-a', 'alias-b']) expect((await runCli(['devices', 'add', name, '--data-dir', dataDir])).code).toBe(0)
    const list = await runCli(['devices', 'list', '--data-dir', dataDir, '--json'])
    const ls = await runCli(['devices', 'ls', '--data-dir', dataDir, '--json'])
    expect(ls.code).toBe(0)
    expect(ls.stdout).toBe(list.stdout)
    expect((await runCli(['devices', 'remove', 'alias-a', '--data-dir', dataDir])).stdout).toMatch(/removed alias-a/)
    expect((await runCli(['devices', 'rm', 'alias-b', '--data-dir', dataDir])).stdout).toMatch(/removed alias-b/)
    expect(JSON.parse((await runCli(['devices', 'ls', '--data-dir', dataDir, '--json'])).stdout)).not.toContainEqual(expect.objectContaining({ name: 'alias-b' }))
  })

  it('registers, lists, shows and removes devices', async () => {
    const add = await runCli(['devices', 'add', 'sensor-7', '--data-dir', dataDir, '--attr', 'room=attic', '--token'])
    expect(add.code).toBe(0)
    expect(add.stdout).toMatch(/token:\s+\S{20,}/)
    expect((await runCli(['devices', 'add', 'sensor-7', '--data-dir', dataDir])).stderr).toMatch(/already exists/)
    expect((await runCli(['devices', 'add', 'bad/name', '--data-dir', dataDir])).stderr).toMatch(/device name 'bad\/name' is invalid/)
    expect((await runCli(['devices', 'add', 'x', '--data-dir', dataDir, '--policy', 'nope'])).stderr).toMatch(/policy 'nope' is not defined/)
    const list = await runCli(['devices', 'list', '--data-dir', dataDir, '--json'])
    const devices = JSON.parse(list.stdout) as Array<Record<string, unknown>>
    expect(devices).toEqual([expect.objectContaining({ name: 'sensor-7', attributes: { room: 'attic' }, credentials: 'certificate+token' })])
    expect(list.stdout).not.toMatch(/scrypt/)
    const show = await runCli(['devices', 'show', 'sensor-7', '--data-dir', dataDir])
    expect(JSON.parse(show.stdout)).toMatchObject({ name: 'sensor-7' })
    expect((await runCli(['devices', 'remove', 'sensor-7', '--data-dir', dataDir])).stdout).toMatch(/removed sensor-7/)
    expect((await runCli(['devices', 'show', 'sensor-7', '--data-dir', dataDir])).stderr).toMatch(/no device named 'sensor-7'/)
  })

  it('creates the CA and a server certificate for the given hosts', async () => {
    const dir = join(tmp.dir, 'pki-only')
    const r = await runCli(['certs', 'init', '--data-dir', dir, '--host', 'gateway.local', '--host', '192.168.7.2'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/names: .*gateway\.local.*192\.168\.7\.2/)
  })

  it('reads, updates and deletes shadows through the running daemon', async () => {
    const up = await runCli(['shadow', 'update', 'fan-1', '--data-dir', dataDir, '--payload', '{"state":{"desired":{"speed":3}}}'])
    expect(up.code).toBe(0)
    expect(JSON.parse(up.stdout)).toMatchObject({ version: 1 })
    const get = await runCli(['shadow', 'get', 'fan-1', '--data-dir', dataDir])
    expect(JSON.parse(get.stdout)).toMatchObject({ state: { delta: { speed: 3 } } })
    const named = await runCli(['shadow', 'get', 'fan-1', '--name', 'cfg', '--data-dir', dataDir])
    expect(named.code).toBe(1)
    expect(JSON.parse(named.stdout)).toMatchObject({ code: 404, message: "No shadow exists with name: 'cfg'" })
    expect((await runCli(['shadow', 'update', 'fan-1', '--data-dir', dataDir, '--payload', '{oops'])).stderr).toMatch(/payload is not valid JSON/)
    expect((await runCli(['shadow', 'delete', 'fan-1', '--data-dir', dataDir])).code).toBe(0)
  })

  it('says clearly when no daemon runs for the data directory', async () => {
    const r = await runCli(['shadow', 'get', 'fan-1', '--data-dir', join(tmp.dir, 'nothing-here')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/does not seem to run with data directory/)
  })
})
