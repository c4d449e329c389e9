/**
 * The README's Quickstart, run as written against real processes, so that it cannot drift from
 * what works. Its ```sh blocks are parsed; each test takes the commands it runs by pattern (a
 * command that no longer matches fails the test), runs them with bash, and checks what the README
 * says they do; the last test fails if a command was left untested.
 *
 * Where the README cannot be taken literally, the convention is:
 * - `<data-dir>`, `<coordinator-url>`, `<cloud-url>` and `<mqtt-port>` stand for what the demo
 *   prints; every command holding them must also appear, filled in, in the demo's own output.
 * - `npm ci` ran before the suite (it is how the suite got its dependencies).
 * - `npm run demo` and `npm start` run their package.json script without the build in front of it
 *   (`npm run build && ...`, or `prestart`): the suite runs against the build made before it, and
 *   rebuilding dist/ would pull files from under processes that are running.
 * - `npm start` gets `--mqtt-port 0 --mqtts-port 0 --ws-port 0 --http-port 0`, so that it cannot
 *   clash with anything on this machine, and the README's default ports (1883, 8883, 8083, 8087)
 *   in the commands after it become the ports it got.
 * - `NAME=value` lines set a variable for the commands after them, as in a shell.
 * - Commands run in a scratch directory that looks like a fresh checkout (package.json, bin/,
 *   dist/, node_modules/ linked to this one), so `./data` is the test's own, and with an empty npm
 *   cache, so `npx` finds this package's bins as on a newly set-up machine.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { background, type Background } from '../helpers/background.js'
import { demoValues, READY } from '../helpers/demo.js'
import { tempDir } from '../helpers/tmp.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))

/** The commands of the README's Quickstart section, in order; `\` continuations joined, comments dropped. */
function quickstartCommands(readme: string): string[] {
  const start = readme.indexOf('\n## Quickstart\n')
  if (start === -1) throw new Error('README.md has no "## Quickstart" section')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)]
    .flatMap((block) => (block[1] ?? '').replace(/\\\n\s*/g, '').split('\n'))
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
}

/** An npm script as it runs once the project is built: without `npm run build && ` in front, and without its `pre` script. */
function builtScript(name: string): string {
  const scripts = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  const script = scripts[name] ?? ''
  const pre = scripts[`pre${name}`]
  expect(pre === undefined || pre === 'npm run build', `pre${name} does only the build`).toBe(true)
  return script.replace(/^npm run build && /, '')
}

describe('the README quickstart', () => {
  const left = quickstartCommands(readFileSync(join(REPO, 'README.md'), 'utf8'))
  const take = (pattern: RegExp): string => {
    const i = left.findIndex((c) => pattern.test(c))
    if (i === -1) throw new Error(`the Quickstart has no command matching ${pattern} (any more); left: ${JSON.stringify(left)}`)
    return left.splice(i, 1)[0] ?? ''
  }

  const tmp = tempDir('edge-quickstart-')
  const checkout = join(tmp.dir, 'checkout')
  const vars: Record<string, string> = {}
  const running: Background[] = []

  /** A newcomer's shell: no npm settings inherited from an `npm test` above us, and none of the CLIs' default URLs. */
  const env = (): NodeJS.ProcessEnv => {
    const inherited = Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'EDGE_COORDINATOR' && k !== 'EDGE_CLOUD')
    return { ...Object.fromEntries(inherited), npm_config_cache: join(tmp.dir, 'npm-cache'), npm_config_update_notifier: 'false', ...vars }
  }
  const bash = (command: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile('bash', ['-c', command], { cwd: checkout, env: env(), timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
      })
    })
  const ok = async (command: string): Promise<string> => {
    const r = await bash(command)
    if (r.code !== 0) throw new Error(`\`${command}\` exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
    return r.stdout
  }
  /** A long-running command; `exec` makes bash become it, so signals reach it as in a terminal. */
  const start = (command: string): Background => {
    const b = background('bash', ['-c', `exec ${command}`], { cwd: checkout, env: env() })
    running.push(b)
    return b
  }
  const eventually = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
    for (const deadline = Date.now() + timeoutMs; !(await check()); await sleep(250)) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    }
  }

  beforeAll(() => {
    mkdirSync(checkout)
    for (const entry of ['package.json', 'bin', 'dist', 'node_modules']) symlinkSync(join(REPO, entry), join(checkout, entry))
  })
  afterEach(async () => {
    await Promise.all(running.splice(0).map((b) => b.stop('SIGINT')))
  })
  afterAll(() => tmp.remove())

  it('should be installed with npm ci, as this suite was', () => {
    take(/^npm ci$/)
    expect(existsSync(join(REPO, 'node_modules/.package-lock.json'))).toBe(true)
  })

  it('should run the demo, whose printed commands show and change the deployment and the heater as the README says', async () => {
    take(/^npm run demo$/)
    const demo = start(builtScript('demo'))
    await demo.waitFor(READY, 120_000)
    const v = demoValues(demo.stdout())
    const filled = (pattern: RegExp): string => {
      const command = take(pattern)
        .replaceAll('<data-dir>', v.dataDir).replaceAll('<coordinator-url>', v.coordinatorUrl)
        .replaceAll('<cloud-url>', v.cloudUrl).replaceAll('<mqtt-port>', String(v.mqttPort))
      expect(demo.stdout(), 'the demo prints the README command').toContain(`  ${command}\n`)
      return command
    }
    const heater = async (command: string): Promise<Record<string, unknown>> => (JSON.parse(await ok(command)) as { state: Record<string, unknown> }).state

    expect(await heater(filled(/^npx edge-coordinator shadow get heater-1 /))).toMatchObject({ desired: { on: true }, reported: { on: true } })

    await ok(filled(/^npx edge-coordinator shadow update heater-1 --name thermostat .*"setpoint":17/))
    const get = filled(/^npx edge-coordinator shadow get heater-1 /)
    await eventually('heater-1 to report off', async () => {
      const state = await heater(get)
      return (state['desired'] as { on?: boolean }).on === false && (state['reported'] as { on?: boolean }).on === false
    })
    await demo.waitFor(/ {2}heater-1 off \([\d.]+ W\) {2}temp-sensor-1 \S+ °C {2}setpoint 17 °C/, 15_000)

    const logs = start(filled(/^npx edge-task logs thermostat -f /))
    await logs.waitFor(/INFO {2}settings changed setpoint=17 [\s\S]*INFO {2}heater off /)
    expect(await logs.stop('SIGINT')).not.toBe('SIGKILL')

    expect(await ok(filled(/^npx edge deploy ls /))).toMatch(/^dep-1\s+group:demo\s+succeeded\s+thermostat@1\.0\.0,telemetry-aggregator@1\.0\.0,health-check@1\.0\.0\s+1\/1 ok/m)

    const sub = start(filled(/^mosquitto_sub -h 127\.0\.0\.1 -p <mqtt-port> /))
    await sub.waitFor(/^things\/temp-sensor-1\/telemetry \{"temperature":\d+(\.\d)?,"humidity":\d+(\.\d)?\}$/m)
    await sub.waitFor(/^things\/heater-1\/telemetry \{"power":[\d.]+,"energyWh":[\d.]+\}$/m)

    demo.signal('SIGINT')
    expect(await demo.exited).toBe(0)
    expect(existsSync(v.dataDir)).toBe(false)
  }, 180_000)

  it('should run a coordinator by hand: register a device, connect it over mutual TLS and deliver an operator\'s delta', async () => {
    take(/^npm start$/)
    const coordinator = start(`${builtScript('start')} --mqtt-port 0 --mqtts-port 0 --ws-port 0 --http-port 0`)
    const [ready] = await coordinator.waitFor(/^\{.*"msg":"coordinator ready".*\}$/m)
    const { endpoints } = JSON.parse(ready) as { endpoints: Record<'mqtt' | 'mqtts' | 'ws' | 'http', { port: number }> }
    const defaults: Record<string, number> = { 1883: endpoints.mqtt.port, 8883: endpoints.mqtts.port, 8083: endpoints.ws.port, 8087: endpoints.http.port }
    const local = (pattern: RegExp): string => take(pattern).replace(/\b(1883|8883|8083|8087)\b/g, (port) => String(defaults[port]))

    const added = await ok(local(/^npx edge-coordinator devices add lamp-1 /))
    expect(added).toMatch(/^registered lamp-1\n {2}certificate: .*\/data\/devices\/lamp-1\/cert\.pem$/m)
    const [, name, value] = /^(\w+)=(\S+)$/.exec(take(/^\w+=/)) ?? []
    vars[name ?? ''] = value ?? ''
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) expect(existsSync(join(checkout, value ?? '', file))).toBe(true)

    const device = start(local(/^mosquitto_sub .*--cert /))
    const update = local(/^npx edge-coordinator shadow update lamp-1 /)
    // The delta goes to subscribers at the time of the update; repeating it until one arrives covers the subscription's set-up.
    await eventually('lamp-1 to receive the delta', async () => {
      await ok(update)
      return /^\$aws\/things\/lamp-1\/shadow\/update\/delta \{.*"state":\{"on":true\}/m.test(device.stdout())
    })
    const doc = JSON.parse(await ok(local(/^npx edge-coordinator shadow get lamp-1$/))) as { state: Record<string, unknown> }
    expect(doc.state).toEqual({ desired: { on: true }, delta: { on: true } })

    expect(await coordinator.stop('SIGINT')).toBe(0)
  }, 120_000)

  it('should have left no command of the Quickstart untested', () => {
    expect(left).toEqual([])
  })
})
