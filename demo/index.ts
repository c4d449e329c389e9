/**
 * `npm run demo`: the whole system on one machine, for a first look.
 *
 * It starts a cloud shim and a coordinator as child processes (as they run in production),
 * provisions the coordinator in the cloud shim, connects simulated devices to the coordinator,
 * signs the three example tasks and deploys them through the cloud shim to a group the
 * coordinator belongs to. Then it prints commands to try, and a status line every few seconds
 * until Ctrl-C, which stops everything and removes the data directory.
 *
 * Every step is an ordinary CLI command, in the order a person would type them: reading `up()`
 * from top to bottom is the manual way to do the same.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { acquireDaemonLock, daemonLockFile, DataDirInUseError } from '../coordinator/store/index.js'
import { DEVICE_NAMES, ROOM_TEMPERATURE, startDevices } from './devices.js'
import { guide } from './guide.js'
import { cli, startDaemon, type Daemon, type ListenAddress } from './run.js'
import { startStatus } from './status.js'

const USAGE = `usage: npm run demo -- [--data-dir DIR] [--keep]

  --data-dir DIR  where everything lives (default: a new temporary directory); it is emptied
                  first, so it must be missing, empty, or a previous demo's that
                  is no longer running
  --keep          keep the data directory when the demo stops (default: remove it)
`

const GATEWAY = 'gateway-1'
const GROUP = 'demo'
const EXAMPLES = fileURLToPath(new URL('../../tasks/examples/', import.meta.url))
/** The thermostat switches on below setpoint - 0.5 °C and off above setpoint + 0.5 °C (its default hysteresis). */
const SETPOINT = ROOM_TEMPERATURE + 3
/** What the guide suggests setting instead, to switch the heater off. */
const LOWER_SETPOINT = ROOM_TEMPERATURE - 2
/** Config deployed with the examples, over their manifests' defaults; short summary windows show results within seconds. */
const CONFIGS: Record<string, object> = {
  thermostat: { setpoint: SETPOINT },
  'telemetry-aggregator': { intervalMs: 10_000 },
}
const STATUS_INTERVAL_MS = 5_000
/** Marks a directory this demo made, the only kind it empties. */
const MARKER = '.edge-demo'

const print = (line: string): void => {
  process.stdout.write(`${line}\n`)
}
const step = (what: string, detail: string): void => print(`  ${what.padEnd(12)} ${detail}`)
const url = (a: ListenAddress | undefined, scheme = 'http'): string => `${scheme}://127.0.0.1:${a?.port ?? 0}`

async function up(dir: string): Promise<void> {
  // A signing key: the cloud shim's catalog and the coordinator accept only bundles it signed.
  const keys = join(dir, 'keys')
  await cli('edge-task', ['keygen', '--out', keys])
  step('signing key', join(keys, 'signing-key.pem'))

  const cloudConfig = writeJson(dir, 'cloud.json', { bundles: { trustedKeys: [readFileSync(join(keys, 'signing-key.pub.pem'), 'utf8')] } })
  const cloud = await daemon('cloud shim', 'edge-cloud', ['--config', cloudConfig, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0'], join(dir, 'cloud'), join(dir, 'cloud.log'))
  const cloudUrl = url(cloud.endpoints['http'])
  const edge = (...args: string[]): Promise<string> => cli('edge', [...args, '--cloud', cloudUrl])
  step('cloud shim', cloudUrl)

  // Provisioning writes the join file: the cloud shim's addresses and CA, and the coordinator's own certificate.
  await cli('edge-cloud', ['coordinators', 'add', GATEWAY, '--attr', `site=${GROUP}`, '--data-dir', join(dir, 'cloud'), '--out', dir])
  const coordinatorConfig = writeJson(dir, 'coordinator.json', {
    tasks: { trustedKeys: [join(keys, 'signing-key.pub.pem')] },
    auth: { anonymousPolicies: ['observer'] },
    policies: [{ name: 'observer', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['gateway/#', 'things/+/telemetry'] }] }],
  })
  const coordinator = await daemon('coordinator', 'edge-coordinator', [
    '--config', coordinatorConfig, '--join', join(dir, `${GATEWAY}.join.json`),
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0',
  ], join(dir, 'coordinator'), join(dir, 'coordinator.log'))
  const coordinatorUrl = url(coordinator.endpoints['http'])
  const mqttUrl = url(coordinator.endpoints['mqtt'], 'mqtt')
  step('coordinator', `${GATEWAY} at ${coordinatorUrl}, joined to the cloud shim`)

  const devices = await startDevices(join(dir, 'coordinator'), mqttUrl)
  running.push({ what: 'devices', stop: devices.stop })
  step('devices', `${DEVICE_NAMES.join(', ')} (simulated, in this process)`)

  const bundles: Array<{ name: string; version: string }> = []
  for (const example of ['thermostat', 'telemetry-aggregator', 'health-check']) {
    const file = join(dir, `${example}.bundle`)
    await cli('edge-task', ['pack', join(EXAMPLES, example), '--key', join(keys, 'signing-key.pem'), '--out', file])
    bundles.push(JSON.parse(await edge('bundles', 'push', file, '--json')) as { name: string; version: string })
  }
  step('bundles', `${bundles.map((b) => `${b.name}@${b.version}`).join(', ')}: packed, signed, in the catalog`)

  // A dynamic group: every coordinator with site=demo, now or later, gets what is deployed to it.
  await edge('groups', 'create', GROUP, '--query', `attributes.site = "${GROUP}"`)
  const specs = bundles.flatMap(({ name, version }) => {
    const config = CONFIGS[name]
    return ['--bundle', `${name}@${version}${config === undefined ? '' : `:${writeJson(dir, `${name}.config.json`, config)}`}`]
  })
  // --watch follows the rollout and fails unless it succeeds; with --json, one line per change.
  const watched = await edge('deploy', 'create', '--target', `group:${GROUP}`, ...specs, '--watch', '--json')
  const deployment = JSON.parse(watched.trim().split('\n').at(-1) ?? '{}') as { id: string; status: string }
  step('deployment', `${deployment.id} to group ${GROUP} (attributes.site = "${GROUP}"): ${deployment.status}`)

  // Run the thermostat once now rather than at its first 30 s tick.
  const decision = JSON.parse(await cli('edge-task', ['invoke', 'thermostat', '--coordinator', coordinatorUrl])) as { temperature: number; setpoint: number }
  await heaterReportsOn(coordinatorUrl)
  step('thermostat', `temp-sensor-1 reads ${decision.temperature} °C, below the setpoint ${decision.setpoint} °C: heater-1 switched on`)

  const pids = { demo: process.pid, cloudShim: cloud.pid, coordinator: coordinator.pid }
  const mqttPort = coordinator.endpoints['mqtt']?.port ?? 0
  print(guide({ dataDir: dir, cloudUrl, coordinatorUrl, mqttPort, pids, setpoint: SETPOINT, lowerSetpoint: LOWER_SETPOINT, keep: opts.keep }))
  print(`ready: deployment ${deployment.id} ${deployment.status}, heater-1 is on`)

  const status = await startStatus({ coordinatorUrl, mqttUrl, deployedSetpoint: SETPOINT, intervalMs: STATUS_INTERVAL_MS, print })
  running.push({ what: 'status line', stop: status.stop })
}

/** Starts a daemon; if it dies before the demo stops it, the demo stops too. */
async function daemon(what: string, bin: 'edge-cloud' | 'edge-coordinator', args: string[], dataDir: string, log: string): Promise<Daemon> {
  const d = await startDaemon(bin, args, dataDir, log)
  running.push({
    what,
    stop: async () => {
      const code = await d.stop()
      if (code !== 0) throw new Error(`it exited (${code}); see ${log}`)
    },
  })
  void d.exited.then((code) => stop(1, `demo: the ${what} exited (${code}); see ${log}`))
  return d
}

async function heaterReportsOn(coordinatorUrl: string): Promise<void> {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(200)) {
    const doc = (await (await fetch(`${coordinatorUrl}/things/heater-1/shadow`)).json()) as { state?: { reported?: { on?: boolean } } }
    if (doc.state?.reported?.on === true) return
  }
  throw new Error('heater-1 did not report "on" within 15 s')
}

function writeJson(dir: string, name: string, value: unknown): string {
  writeFileSync(join(dir, name), `${JSON.stringify(value, null, 2)}\n`)
  return join(dir, name)
}

function options(): { dataDir?: string; keep: boolean } {
  try {
    const { values } = parseArgs({ options: { 'data-dir': { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } })
    if (values.help === true) {
      process.stdout.write(USAGE)
      process.exit(0)
    }
    return { ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }), keep: values.keep === true }
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`)
  }
}

/** A fresh directory. A given one is emptied only if the demo made it, so a mistyped --data-dir never wipes anyone's files. */
function prepareDataDir(given: string | undefined): string {
  const dir = given === undefined ? mkdtempSync(join(tmpdir(), 'edge-demo-')) : resolve(given)
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, MARKER))) {
    return fail(`${dir} is not empty and not a previous demo's data directory; give another --data-dir`)
  }
  refuseIfRunning(dir)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, MARKER), '')
  return dir
}

/** A previous demo's directory may still be in use by its daemons: emptying it would pull their files away. */
function refuseIfRunning(dir: string): void {
  for (const sub of ['cloud', 'coordinator']) {
    const dataDir = join(dir, sub)
    if (!existsSync(daemonLockFile(dataDir))) continue
    try {
      acquireDaemonLock(dataDir, () => runningPid(dataDir)).release()
    } catch (err) {
      if (!(err instanceof DataDirInUseError)) throw err
      fail(`${dir} is in use by a running demo (its ${sub} is ${err.holder}); stop that demo first, or give another --data-dir`)
    }
  }
}

function runningPid(dataDir: string): string {
  try {
    return `pid ${(JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as { pid: number }).pid}`
  } catch {
    return 'a daemon that has not written its endpoints yet'
  }
}

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`)
  process.exit(1)
}

/** What was started, with how to stop it. Stopped newest first: devices before their coordinator, the coordinator before the cloud shim. */
const running: Array<{ what: string; stop: () => Promise<void> }> = []
let stopping = false

/**
 * Stops everything that was started, then removes the data directory (kept when something failed,
 * for its logs). Signals during the stop are ignored: each of its steps has a deadline of its own.
 */
async function stop(code: number, why: string): Promise<void> {
  if (stopping) return
  stopping = true
  print(why)
  for (const { what, stop: stopIt } of running.reverse()) {
    await stopIt().catch((err: Error) => {
      print(`stopping the ${what} failed: ${err.message}`)
      code = 1
    })
  }
  if (opts.keep || code !== 0) print(`data kept in ${dir}`)
  else rmSync(dir, { recursive: true, force: true })
  print('stopped')
  process.exit(code)
}

const opts = options()
const dir = prepareDataDir(opts.dataDir)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0, `${signal}: stopping the demo`))
print(`edge-coordinator demo, data in ${dir}`)
await up(dir).catch((err: Error) => stop(1, `demo: ${err.message}`))
