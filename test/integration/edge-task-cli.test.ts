import { execFile, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runInNewContext } from 'node:vm'
import { Encoder } from 'cbor-x'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import { decodeBundle, keyId, type DecodedBundle, type TaskInfo } from '../../coordinator/protocol/index.js'
import type { DeviceInfo as HostDeviceInfo, ShadowReply as HostShadowReply, TaskEvent as HostTaskEvent } from '../../coordinator/sandbox/types.js'
import type { DeviceInfo, ShadowReply, TaskContext, TaskEvent } from '../../tasks/api.js'
import { tempDir } from '../helpers/tmp.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'

const BIN = fileURLToPath(new URL('../../bin/edge-task.js', import.meta.url))
const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
const EXAMPLES = fileURLToPath(new URL('../../tasks/examples/', import.meta.url))
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })

interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built `edge-task` (needs dist/) in `cwd`, without EDGE_COORDINATOR from the caller's shell. */
function edgeTask(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  const { EDGE_COORDINATOR: _ignored, ...inherited } = process.env
  return new Promise((resolve) => {
    execFile(process.execPath, ['--no-node-snapshot', BIN, ...args], { cwd, env: { ...inherited, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

const digestIn = (stdout: string): string | undefined => /digest\s+([0-9a-f]{64})/.exec(stdout)?.[1]

function decodeFile(path: string): DecodedBundle {
  const r = decodeBundle(readFileSync(path), { maxBytes: 64 * 1024 * 1024 })
  if (!r.ok) throw r.error
  return r.bundle
}

/** A task directory written from a map of relative paths to contents. */
function writeTask(dir: string, files: Record<string, string | object>): string {
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), typeof body === 'string' ? body : JSON.stringify(body, null, 2))
  }
  return dir
}

const manifest = (name: string, extra: object = {}) => ({ name, version: '0.1.0', entry: 'src/index.ts', triggers: [{ type: 'invoke' }], ...extra })

describe('edge-task: keys, pack, sign, inspect', () => {
  const tmp = tempDir('edge-task-cli-')
  afterAll(() => tmp.remove())

  it('--version prints the package.json version and exits 0', async () => {
    const r = await edgeTask(['--version'], tmp.dir)
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(PKG_VERSION)
  })

  it('keygen writes a private key only its owner can read and prints the keyId', async () => {
    const r = await edgeTask(['keygen', '--out', 'keys'], tmp.dir)
    expect(r.code).toBe(0)
    const id = /key id\s+([0-9a-f]{16})/.exec(r.stdout)?.[1]
    expect(id).toBe(keyId(readFileSync(join(tmp.dir, 'keys/signing-key.pub.pem'), 'utf8')))
    expect(statSync(join(tmp.dir, 'keys/signing-key.pem')).mode & 0o777).toBe(0o600)
    const again = await edgeTask(['keygen', '--out', 'keys'], tmp.dir)
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^edge-task: error: .*signing-key\.pem already exists/)
  })

  it('pack --key signs, inspect shows the signer, sign signs an unsigned bundle', async () => {
    const key = join(tmp.dir, 'keys/signing-key.pem')
    const id = keyId(readFileSync(key, 'utf8'))
    const packed = await edgeTask(['pack', join(EXAMPLES, 'health-check'), '--key', key, '--out', 'signed.bundle'], tmp.dir)
    expect(packed.code).toBe(0)
    expect(packed.stdout).toContain(`signer  ${id}`)
    const inspected = await edgeTask(['inspect', 'signed.bundle'], tmp.dir)
    expect(inspected.stdout).toContain(`signer       ${id} (signature valid)`)
    expect(inspected.stdout).toMatch(/triggers\s+every 30s; invoke/)
    const json = JSON.parse((await edgeTask(['inspect', 'signed.bundle', '--json'], tmp.dir)).stdout) as Record<string, unknown>
    expect(json).toMatchObject({ name: 'health-check', version: '1.0.0', signer: id, digest: digestIn(packed.stdout) })

    const unsigned = await edgeTask(['pack', join(EXAMPLES, 'health-check')], tmp.dir)
    expect(unsigned.stdout).toContain('signer  unsigned')
    expect((await edgeTask(['inspect', 'health-check-1.0.0.bundle'], tmp.dir)).stdout).toMatch(/signer\s+unsigned/)
    const signed = await edgeTask(['sign', 'health-check-1.0.0.bundle', '--key', key], tmp.dir)
    expect(signed.code).toBe(0)
    expect(decodeFile(join(tmp.dir, 'health-check-1.0.0.bundle')).signer?.keyId).toBe(id)
    expect(digestIn(signed.stdout)).toBe(digestIn(unsigned.stdout))
  })

  it('inspect and sign refuse a tampered bundle', async () => {
    const bytes = readFileSync(join(tmp.dir, 'signed.bundle'))
    const at = bytes.indexOf('gateway/health') + 1
    bytes[at] = (bytes[at] ?? 0) ^ 0x01
    writeFileSync(join(tmp.dir, 'tampered.bundle'), bytes)
    const r = await edgeTask(['inspect', 'tampered.bundle'], tmp.dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/tampered\.bundle: bundle signature by key [0-9a-f]{16} does not match its content/)
    expect((await edgeTask(['sign', 'tampered.bundle', '--key', 'keys/signing-key.pem'], tmp.dir)).stderr).toMatch(/cannot sign tampered\.bundle/)
  })

  it.each(['thermostat', 'telemetry-aggregator', 'health-check'])('packs the %s example into compiled code', async (name) => {
    const r = await edgeTask(['pack', join(EXAMPLES, name)], tmp.dir)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const b = decodeFile(join(tmp.dir, `${name}-1.0.0.bundle`))
    expect(r.stdout).toContain(`packed ${name} 1.0.0 -> ${name}-1.0.0.bundle`)
    expect(digestIn(r.stdout)).toBe(b.digest)
    expect(b.code).toMatch(/^(?:"use strict";\n)?var __edgeTask = \(\(\) => \{/)
    expect(b.code).not.toMatch(/\binterface\b|: TaskContext|import /)
    expect(b.manifest.name).toBe(name)
  })

  it('packs the same directory to the same digest from any working directory', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere'), { recursive: true })
    const here = await edgeTask(['pack', join(EXAMPLES, 'thermostat'), '--out', 'a.bundle'], tmp.dir)
    const there = await edgeTask(['pack', join(EXAMPLES, 'thermostat'), '--out', 'b.bundle'], join(tmp.dir, 'elsewhere'))
    expect(digestIn(there.stdout)).toBe(digestIn(here.stdout))
  })

  it('bundles npm dependencies into the code', async () => {
    const dir = writeTask(join(tmp.dir, 'with-dep'), {
      'task.json': manifest('with-dep'),
      'src/index.ts': "import { double } from 'tiny-math'\nexport async function handler() { return double(21) }\n",
      'node_modules/tiny-math/package.json': { name: 'tiny-math', version: '1.0.0', main: 'index.cjs', module: 'index.mjs' },
      'node_modules/tiny-math/index.mjs': 'export const double = (x) => x * 2\n',
      'node_modules/tiny-math/index.cjs': 'exports.double = (x) => x * 2\n',
    })
    const r = await edgeTask(['pack', dir], tmp.dir)
    expect(r.code).toBe(0)
    const code = decodeFile(join(tmp.dir, 'with-dep-0.1.0.bundle')).code
    // mainFields ['module', 'main']: the ESM build of the package is preferred.
    expect(code).toContain('// node_modules/tiny-math/index.mjs')
    await expect(runInNewContext(`${code}\n;__edgeTask.handler()`)).resolves.toBe(42)
  })

  it('refuses a Node.js built-in import, naming the module and where', async () => {
    for (const spec of ['fs', 'node:fs']) {
      const dir = writeTask(join(tmp.dir, `uses-${spec.replace(':', '-')}`), {
        'task.json': manifest('uses-fs'),
        'src/index.ts': `import { readFileSync } from '${spec}'\nexport async function handler() { return readFileSync('/etc/passwd', 'utf8') }\n`,
      })
      const r = await edgeTask(['pack', dir], tmp.dir)
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`src/index.ts:1:29: imports "${spec}", a Node.js built-in module: tasks run in a V8 sandbox without Node.js APIs`)
    }
  })

  it('lists every manifest error with its field', async () => {
    const dir = writeTask(join(tmp.dir, 'bad-manifest'), {
      'task.json': { name: '../x', version: '1', entry: 'src/index.ts', limits: { memoryMb: 1024 } },
      'src/index.ts': 'export async function handler() {}\n',
    })
    const r = await edgeTask(['pack', dir], tmp.dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('task.json is invalid:\n  name: expected 1-63 characters')
    expect(r.stderr).toContain('\n  version: expected a semantic version')
    expect(r.stderr).toContain('\n  limits.memoryMb: expected an integer from 8 to 512, got 1024')
  })

  it('names a missing entry, a missing handler export and a JSON syntax error', async () => {
    const noEntry = writeTask(join(tmp.dir, 'no-entry'), { 'task.json': manifest('no-entry') })
    expect((await edgeTask(['pack', noEntry], tmp.dir)).stderr).toMatch(/entry "src\/index\.ts" \(task\.json\) does not exist/)
    const noHandler = writeTask(join(tmp.dir, 'no-handler'), { 'task.json': manifest('no-handler'), 'src/index.ts': 'export const other = 1\n' })
    expect((await edgeTask(['pack', noHandler], tmp.dir)).stderr).toMatch(/src\/index\.ts does not export "handler" \(the handler named in task\.json\); it exports: other/)
    const badJson = writeTask(join(tmp.dir, 'bad-json'), { 'task.json': '{"name": ' })
    expect((await edgeTask(['pack', badJson], tmp.dir)).stderr).toMatch(/task\.json is not valid JSON/)
  })
})

describe('edge-task: example task logic', () => {
  const bundles = new Map<string, string>()

  /** Evaluates a packed example the way the sandbox does: a script that assigns the global __edgeTask. */
  function load(name: string, globals: Record<string, unknown> = {}): Record<string, (...args: unknown[]) => Promise<unknown>> {
    const code = bundles.get(name)
    if (code === undefined) throw new Error(`${name} was not packed`)
    return runInNewContext(`${code}\n;__edgeTask`, { ...globals }) as Record<string, (...args: unknown[]) => Promise<unknown>>
  }

  beforeAll(async () => {
    const tmp = tempDir('edge-task-examples-')
    for (const name of ['thermostat', 'telemetry-aggregator', 'health-check']) {
      const r = await edgeTask(['pack', join(EXAMPLES, name), '--out', 'x.bundle'], tmp.dir)
      if (r.code !== 0) throw new Error(r.stderr)
      bundles.set(name, decodeFile(join(tmp.dir, 'x.bundle')).code)
    }
    tmp.remove()
  })

  it('thermostat switches with hysteresis, remembers its last command and adopts settings from a delta', async () => {
    const task = load('thermostat')
    const fake = fakeContext({ sensorThing: 'temp-sensor-1', heaterThing: 'heater-1', temperatureKey: 'temperature', setpoint: 21, hysteresis: 0.5 })
    const tick = { type: 'schedule', schedule: '30s', firedAt: Date.now() }
    const at = async (temperature: number) => {
      fake.shadows.set('temp-sensor-1', { status: 200, body: { state: { reported: { temperature } } } })
      return task['handler']!(tick, fake.ctx)
    }
    expect(await at(19)).toMatchObject({ temperature: 19, heater: 'on', sent: true })
    expect(fake.updates).toEqual([{ thing: 'heater-1', name: undefined, request: { state: { desired: { on: true } } } }])
    expect(await at(19.2)).toMatchObject({ heater: 'on', sent: false })
    expect(await at(21.4)).toMatchObject({ heater: 'unchanged', sent: false })
    expect(await at(21.6)).toMatchObject({ heater: 'off', sent: true })
    expect(fake.updates).toHaveLength(2)
    expect(fake.updates[1]?.request).toEqual({ state: { desired: { on: false } } })

    const delta = { type: 'shadow-delta', thingName: 'heater-1', shadowName: 'thermostat', delta: { setpoint: 23 }, version: 2 }
    expect(await task['handler']!(delta, fake.ctx)).toMatchObject({ setpoint: 23, hysteresis: 0.5, temperature: 21.6, heater: 'on', sent: true })
    expect(fake.updates[2]).toEqual({ thing: 'heater-1', name: 'thermostat', request: { state: { reported: { setpoint: 23, hysteresis: 0.5 } } } })
    expect(fake.logs).toContainEqual(['info', 'heater on', { temperature: 21.6, setpoint: 23, hysteresis: 0.5 }])

    fake.shadows.delete('temp-sensor-1')
    expect(await task['handler']!(tick, fake.ctx)).toMatchObject({ temperature: null, heater: 'unchanged', reason: 'sensor temp-sensor-1 has no shadow yet' })
  })

  it('telemetry-aggregator publishes one CBOR summary per window, then starts a new one', async () => {
    let flush: (() => void) | undefined
    let period: number | undefined
    const task = load('telemetry-aggregator', { setInterval: (fn: () => void, ms: number) => { flush = fn; period = ms; return 1 } })
    const fake = fakeContext({ intervalMs: 200 })
    await task['start']!(fake.ctx)
    expect(period).toBe(200)
    const message = (device: string, json: unknown) => ({ type: 'mqtt', topic: `things/${device}/telemetry`, payload: new Uint8Array(), json })
    await task['handler']!(message('a', { temperature: 20, humidity: 40 }), fake.ctx)
    await task['handler']!(message('a', { temperature: 21, humidity: 40 }), fake.ctx)
    await task['handler']!(message('b', { humidity: 50 }), fake.ctx)
    await task['handler']!(message('c', { status: 'ok' }), fake.ctx)
    flush!()
    await until(() => fake.published.length === 1)
    const [sent] = fake.published
    expect(sent?.topic).toBe('gateway/telemetry/summary')
    const summary = cbor.decode(sent?.payload as Uint8Array) as { window: { start: number; end: number }; devices: unknown }
    expect(summary.devices).toEqual({ a: { n: 2, avgTemperature: 20.5, avgHumidity: 40 }, b: { n: 1, avgTemperature: null, avgHumidity: 50 } })
    expect(summary.window.end).toBeGreaterThanOrEqual(summary.window.start)
    flush!()
    await until(async () => ((await fake.ctx.state.get('window')) as { start: number }).start >= summary.window.end)
    expect(fake.published).toHaveLength(1)
  })

  it('health-check reports stale devices, publishes the report and returns it', async () => {
    const task = load('health-check')
    const fake = fakeContext({ staleAfterSeconds: 300 })
    const now = Math.floor(Date.now() / 1000)
    fake.devices.push({ name: 'fresh', attributes: { monitored: 'true' } }, { name: 'old', attributes: {} }, { name: 'silent', attributes: {} }, { name: 'gone', attributes: {} })
    fake.shadows.set('fresh', { status: 200, body: { metadata: { reported: { t: { timestamp: now - 400 }, nested: { h: { timestamp: now - 10 } } } } } })
    fake.shadows.set('old', { status: 200, body: { metadata: { reported: { list: [{ timestamp: now - 1000 }] } } } })
    fake.shadows.set('silent', { status: 200, body: { metadata: { desired: { on: { timestamp: now } } } } })
    const report = await task['handler']!({ type: 'invoke', payload: null }, fake.ctx) as Record<string, unknown>
    expect(report).toMatchObject({
      staleAfterSeconds: 300, devices: 4, healthy: ['fresh'],
      stale: [
        { name: 'old', lastReportedAt: now - 1000, reason: expect.stringMatching(/^last reported \d+ s ago$/) },
        { name: 'silent', lastReportedAt: null, ageSeconds: null, reason: 'never reported' },
        { name: 'gone', lastReportedAt: null, ageSeconds: null, reason: 'no shadow' },
      ],
    })
    expect(fake.published).toEqual([{ topic: 'gateway/health', payload: report }])
  })
})

describe('edge-task: talking to a coordinator', () => {
  const tmp = tempDir('edge-task-remote-')
  let run: RunningCoordinator
  let url: string
  let bundleFile: string
  let echoFile: string

  const installed = async (name: string): Promise<TaskInfo | undefined> => {
    const res = await fetch(`${url}/v1/tasks/${name}`)
    return res.ok ? ((await res.json()) as TaskInfo) : undefined
  }

  beforeAll(async () => {
    run = await startCoordinator({ tasks: { allowUnsigned: true } })
    url = run.httpUrl
    const r = await edgeTask(['pack', join(EXAMPLES, 'thermostat'), '--out', 'thermostat.bundle'], tmp.dir)
    if (r.code !== 0) throw new Error(r.stderr)
    bundleFile = join(tmp.dir, 'thermostat.bundle')
    const echo = writeTask(join(tmp.dir, 'echo'), {
      'task.json': manifest('echo'),
      'src/index.ts': `export async function handler(event: { payload: unknown }, ctx: { log: { info(m: string, f?: object): void } }) {
  ctx.log.info('heater on', { temperature: 19.5, detail: 'two words' })
  return { echo: event.payload }
}
`,
    })
    const packed = await edgeTask(['pack', echo, '--out', join(tmp.dir, 'echo.bundle')], tmp.dir)
    if (packed.code !== 0) throw new Error(packed.stderr)
    echoFile = join(tmp.dir, 'echo.bundle')
  })
  afterAll(async () => {
    await run.stop()
    tmp.remove()
  })

  it('push installs the bundle and prints the installed task', async () => {
    const r = await edgeTask(['push', bundleFile, '--coordinator', url], tmp.dir)
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^thermostat 1\.0\.0 {2}running\n {2}digest {5}[0-9a-f]{64}/)
    expect((await installed('thermostat'))?.digest).toBe(decodeFile(bundleFile).digest)
  })

  it('push --config sets config overrides, validated against the manifest', async () => {
    expect((await edgeTask(['push', bundleFile, '--config', '{"setpoint":19}', '--coordinator', url], tmp.dir)).code).toBe(0)
    const bad = await edgeTask(['push', bundleFile, '--config', '{"setpoint":"warm"}', '--coordinator', url], tmp.dir)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/config\.setpoint.*(COORD_TASK_CONFIG_INVALID)/)
  })

  it('takes the URL from EDGE_COORDINATOR', async () => {
    const r = await edgeTask(['ls'], tmp.dir, { EDGE_COORDINATOR: url })
    expect(r.stdout).toMatch(/^NAME\s+VERSION\s+STATE\s+MODE\s+CALLS\s+FAILED\s+QUEUE\s+DIGEST\s+SIGNER\nthermostat\s+1\.0\.0\s+running\s+on-demand\s+\d+\s+\d+\s+0\s+[0-9a-f]{12}\s+unsigned\n$/)
  })

  it('ls --json, show, stop, start and rm', async () => {
    const list = JSON.parse((await edgeTask(['ls', '--json', '--coordinator', url], tmp.dir)).stdout) as TaskInfo[]
    expect(list.map((t) => t.name)).toEqual(['thermostat'])
    expect((JSON.parse((await edgeTask(['list', '--json', '--coordinator', url], tmp.dir)).stdout) as TaskInfo[]).map((t) => t.name)).toEqual(['thermostat'])
    expect((await edgeTask(['show', 'thermostat', '--coordinator', url], tmp.dir)).stdout).toMatch(/triggers\s+every 30s; shadow-delta heater-1 \(shadow thermostat\); invoke/)
    expect((await edgeTask(['stop', 'thermostat', '--coordinator', url], tmp.dir)).stdout).toBe('thermostat: stopped\n')
    expect((await installed('thermostat'))?.state).toBe('stopped')
    expect((await edgeTask(['start', 'thermostat', '--coordinator', url], tmp.dir)).stdout).toBe('thermostat: running\n')
    expect((await edgeTask(['rm', 'thermostat', '--coordinator', url], tmp.dir)).stdout).toBe('removed thermostat\n')
    expect(await installed('thermostat')).toBeUndefined()
  })

  it('prints the API error message and code in one line', async () => {
    const r = await edgeTask(['show', 'nope', '--coordinator', url], tmp.dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('edge-task: error: task "nope" is not installed (COORD_TASK_NOT_FOUND)\n')
  })

  it('invoke sends the JSON payload and prints the result', async () => {
    expect((await edgeTask(['push', echoFile, '--coordinator', url], tmp.dir)).code).toBe(0)
    const r = await edgeTask(['invoke', 'echo', '--payload', '{"deep":true}', '--coordinator', url], tmp.dir)
    expect(JSON.parse(r.stdout)).toEqual({ echo: { deep: true } })
    expect((await edgeTask(['invoke', 'x', '--payload', '{bad', '--coordinator', url], tmp.dir)).stderr).toMatch(/payload is not valid JSON/)
  })

  it('logs prints one readable line per entry, and -f follows new ones', async () => {
    await edgeTask(['invoke', 'echo', '--payload', '0', '--coordinator', url], tmp.dir)
    const r = await edgeTask(['logs', 'echo', '--tail', '1', '--coordinator', url], tmp.dir)
    expect(r.stdout).toMatch(/^\S+ INFO  heater on temperature=19\.5 detail="two words"\n$/)
    const child = spawn(process.execPath, ['--no-node-snapshot', BIN, 'logs', 'echo', '-f', '--tail', '0', '--coordinator', url], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      await edgeTask(['invoke', 'echo', '--payload', '1', '--coordinator', url], tmp.dir)
      await until(() => out.includes('heater on'), 10_000)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('names the URL of an unreachable coordinator in one line', async () => {
    const dead = await closedPort()
    const r = await edgeTask(['ls', '--coordinator', dead], tmp.dir)
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`edge-task: error: cannot reach the coordinator at ${dead}: ECONNREFUSED (is it running? set --coordinator or EDGE_COORDINATOR)\n`)
  })

  it('dev pushes, then re-packs and re-pushes on every save until Ctrl-C', async () => {
    const dir = writeTask(join(tmp.dir, 'dev-task'), {
      'task.json': manifest('dev-task'),
      'src/index.ts': 'export async function handler() { return 1 }\n',
    })
    // Run inside the task directory: the bundle it writes there must not retrigger it.
    const child = spawn(process.execPath, ['--no-node-snapshot', BIN, 'dev', '.', '--coordinator', url], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    const pushes = (): string[] => [...out.matchAll(/pushed dev-task 0\.1\.0 ([0-9a-f]{12}) \(running\)/g)].map((m) => m[1] ?? '')
    try {
      await until(() => out.includes('watching '), 15_000)
      expect(pushes()).toHaveLength(1)
      await new Promise((resolve) => setTimeout(resolve, 700))
      expect(pushes()).toHaveLength(1)
      writeFileSync(join(dir, 'src/index.ts'), 'export async function handler() { return 2 }\n')
      await until(() => pushes().length === 2, 15_000)
      expect(pushes()[1]).not.toBe(pushes()[0])
      const res = await fetch(`${url}/v1/tasks/dev-task/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      expect(await res.json()).toEqual({ result: 2 })
      writeFileSync(join(dir, 'src/index.ts'), 'export async function handler( { return 3 }\n')
      await until(() => /cannot bundle the task/.test(out), 15_000)
      child.kill('SIGINT')
      expect(await exited).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
    expect((await installed('dev-task'))?.digest.slice(0, 12)).toBe(pushes()[1])
  })
})

describe('tasks/api.ts', () => {
  it('matches the sandbox host contract', () => {
    expectTypeOf<TaskEvent>().toEqualTypeOf<HostTaskEvent>()
    expectTypeOf<ShadowReply>().toEqualTypeOf<HostShadowReply>()
    expectTypeOf<DeviceInfo>().toEqualTypeOf<HostDeviceInfo>()
  })
})

interface FakeContext {
  ctx: TaskContext
  shadows: Map<string, ShadowReply>
  devices: DeviceInfo[]
  updates: Array<{ thing: string; name: string | undefined; request: Record<string, unknown> }>
  published: Array<{ topic: string; payload: unknown }>
  logs: Array<[string, string, unknown]>
}

/** A TaskContext over maps and arrays, copying values in and out like the real host. */
function fakeContext(config: Record<string, unknown>): FakeContext {
  const state = new Map<string, unknown>()
  const fake: Omit<FakeContext, 'ctx'> = { shadows: new Map(), devices: [], updates: [], published: [], logs: [] }
  const log = (level: string) => (msg: string, fields?: unknown) => { fake.logs.push([level, msg, fields]) }
  const ctx: TaskContext = {
    task: { name: 'example', version: '1.0.0' },
    config,
    publish: async (topic, payload) => { fake.published.push({ topic, payload }) },
    shadow: {
      get: async (thing) => fake.shadows.get(thing) ?? { status: 404, body: { code: 404, message: `No shadow exists with name: '${thing}'` } },
      update: async (thing, request, opts) => {
        fake.updates.push({ thing, name: opts?.name, request: structuredClone(request) })
        return { status: 200, body: {} }
      },
      delete: async () => ({ status: 200, body: {} }),
    },
    devices: async () => structuredClone(fake.devices),
    state: {
      get: async (key) => structuredClone(state.get(key)),
      set: async (key, value) => { state.set(key, structuredClone(value)) },
      delete: async (key) => state.delete(key),
      list: async (prefix = '') => [...state.keys()].filter((k) => k.startsWith(prefix)),
    },
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    invoke: async () => null,
    cbor: { encode: (v) => new Uint8Array(cbor.encode(v)), decode: (b) => cbor.decode(b) },
  }
  return { ctx, ...fake }
}

/** A URL nothing listens on: a port that was just free. */
function closedPort(): Promise<string> {
  const server = createServer()
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resolve(`http://127.0.0.1:${port}`))
  }))
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
