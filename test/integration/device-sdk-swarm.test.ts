/**
 * The swarm CLI as an operator runs it: the built `dist/devices/cli.js` in its own process against
 * an in-process coordinator, anonymous and with tokens from a token file, stopped with Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { addDevice } from '../helpers/devices-cli.js'
import { tempDir } from '../helpers/tmp.js'
import { operator, setDesired, until } from './device-sdk-helpers.js'

const CLI = fileURLToPath(new URL('../../dist/devices/cli.js', import.meta.url))

interface CliRun {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exit: Promise<number | null>
}

function runSwarm(args: string[]): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, stdout: () => out, stderr: () => err, exit }
}

const statusShows = (run: CliRun, re: RegExp): Promise<true> => until(`status ${re}`, () => (re.test(run.stdout()) ? true : undefined), 15_000)

describe('swarm CLI (dist/devices/cli.js)', () => {
  const running: RunningCoordinator[] = []
  const children: ChildProcess[] = []
  const dirs: Array<{ remove(): void }> = []

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
    for (const r of running.splice(0)) await r.stop()
    for (const d of dirs.splice(0)) d.remove()
  })

  it('runs plugs that obey the operator, prints status lines and stops cleanly on SIGINT', async () => {
    const coordinator = await startCoordinator({ shadow: { maxRequestsPerSecondPerThing: 0 } })
    running.push(coordinator)
    const run = runSwarm(['--coordinator', coordinator.mqttUrl, '--count', '3', '--kind', 'plug', '--prefix', 'swarm-', '--interval-ms', '200', '--status-ms', '200'])
    children.push(run.child)
    expect(await statusShows(run, /^connected 3\/3 {2}updates\/s [\d.]+ {2}telemetry\/s [\d.]+ {2}errors 0$/m)).toBe(true)
    expect(run.stdout()).toContain(`swarm: 3 plug device(s) swarm-1..swarm-3 -> ${coordinator.mqttUrl} (anonymous)`)

    await setDesired(coordinator.httpUrl, 'swarm-2', { on: true })
    const reported = await until('swarm-2 to switch on', async () => {
      const r = (await operator(coordinator.httpUrl, 'GET', 'swarm-2')).json as { state?: { reported?: { on?: boolean; power?: number } } }
      return r.state?.reported?.on === true ? r.state.reported : undefined
    })
    expect(reported.power).toBeGreaterThan(40)

    run.child.kill('SIGINT')
    expect(await run.exit).toBe(0)
    expect(run.stdout()).toMatch(/SIGINT: stopping 3 device\(s\)\nstopped; connected 0\/3 /)
    expect(run.stderr()).toBe('')
  })

  it('discovers the broker through the API and logs devices in with a token file', async (ctx) => {
    const tmp = tempDir('edge-coord-swarm-')
    dirs.push(tmp)
    const issued = [await addDevice(tmp.dir, 'tok-1', ['--token', '--no-cert']), await addDevice(tmp.dir, 'tok-2', ['--token', '--no-cert'])]
    const tokenFile = join(tmp.dir, 'tokens.txt')
    writeFileSync(tokenFile, `# issued by devices add --token\n${issued.map((d) => `${d.name} ${d.token}`).join('\n')}\n`)
    const coordinator = await startCoordinator({ auth: { allowAnonymousLoopback: false } }, { dataDir: tmp.dir })
    running.push(coordinator)
    const probe = await fetch(`${coordinator.httpUrl}/v1/discovery/tok-1`)
    ctx.skip(probe.status === 404, 'the coordinator has no GET /v1/discovery/{thing} route yet')

    const run = runSwarm(['--coordinator', coordinator.httpUrl, '--count', '2', '--prefix', 'tok-', '--token-file', tokenFile, '--interval-ms', '200', '--status-ms', '200'])
    children.push(run.child)
    expect(await statusShows(run, /^connected 2\/2 .* errors 0$/m)).toBe(true)
    expect(run.stdout()).toContain(`-> ${coordinator.mqttUrl} (tokens)`)
    run.child.kill('SIGTERM')
    expect(await run.exit).toBe(0)
  })

  it('refuses a token file that misses a device, in one line, before connecting anything', async () => {
    const tmp = tempDir('edge-coord-swarm-')
    dirs.push(tmp)
    const tokenFile = join(tmp.dir, 'tokens.txt')
    writeFileSync(tokenFile, 'sim-1 abc\n')
    const run = runSwarm(['--coordinator', 'mqtt://127.0.0.1:1', '--count', '3', '--token-file', tokenFile])
    children.push(run.child)
    expect(await run.exit).toBe(1)
    expect(run.stderr()).toBe('devices: error: token file has no token for sim-2, sim-3\n')
  })
})
