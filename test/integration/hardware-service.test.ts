import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { loadConfig } from '../../coordinator/config/index.js'
import { encodeBundle } from '../../coordinator/protocol/index.js'
import { connect } from '../helpers/mqtt.js'
import { killHard, startDaemon, type Daemon } from '../helpers/daemon.js'
import { tempDir } from '../helpers/tmp.js'
import { BOARDS, writeFakeRoot } from '../unit/hardware/fake-root.js'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
const UNIT = join(REPO, 'hardware/systemd/edge-coordinator.service')
const INSTALL = join(REPO, 'hardware/install/install.sh')

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0
const hasNotify = spawnSync('systemd-notify', ['--version']).status === 0 && spawnSync('python3', ['-c', 'import socket']).status === 0

/** Stands in for the service manager's notify socket, printing each datagram it receives. */
const NOTIFY_LISTENER = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("bound", flush=True)',
  'while True:',
  '    print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
].join('\n')

describe('the systemd unit', () => {
  const tmp = tempDir('edge-unit-')
  afterAll(() => tmp.remove())

  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify (with this machine\'s node and checkout, as install.sh renders it)', () => {
    const unit = join(tmp.dir, 'edge-coordinator.service')
    writeFileSync(unit, readFileSync(UNIT, 'utf8').replace('/usr/bin/node', process.execPath).replaceAll('/opt/edge-coordinator', REPO))
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
    expect(r.stderr).not.toMatch(/Unknown key|ignoring|Invalid|not executable/i)
    expect(r.status).toBe(0)
  })

  it('is a notify service with a watchdog, a restart policy, its own user and hardening', () => {
    const text = readFileSync(UNIT, 'utf8')
    for (const line of [
      'Type=notify', 'NotifyAccess=all', 'WatchdogSec=30s', 'Restart=on-failure', 'User=edge', 'SupplementaryGroups=gpio dialout',
      'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/edge-coordinator', 'PrivateTmp=yes', 'ProtectHome=yes', 'CapabilityBoundingSet=',
      'ExecStart=/usr/bin/node --no-node-snapshot --max-semi-space-size=4 /opt/edge-coordinator/bin/edge-coordinator.js start --config /etc/edge-coordinator/config.json',
    ]) expect(text.split('\n')).toContain(line)
  })
})

describe('install.sh --dry-run', () => {
  const tmp = tempDir('edge-install-')
  afterAll(() => tmp.remove())

  const dryRun = (): string => {
    const root = writeFakeRoot(join(tmp.dir, 'root'), BOARDS.pi4.files, [...BOARDS.pi4.devices])
    return execFileSync('bash', [INSTALL, '--dry-run', '--root', root, '--prefix', join(tmp.dir, 'opt/edge-coordinator'), '--node', process.execPath], { encoding: 'utf8' })
  }

  it('prints every step for this board and changes nothing', () => {
    const out = dryRun()
    expect(out).toMatch(/dry run: nothing is changed/)
    expect(out).toMatch(/^board: +pi4 \(Raspberry Pi 4 Model B Rev 1\.4\), 4096 MB RAM/m)
    expect(out).toMatch(/^capabilities: board=pi4 arch=\S+ memory=4gb gpio i2c serial camera$/m)
    expect(out).toMatch(/^limits: .*tasks\.maxConcurrentCalls=8 tasks\.maxTasks=64 tasks\.maxMemoryMb=512/m)
    expect(out).toMatch(/^\+ (useradd --system --user-group --home-dir \/var\/lib\/edge-coordinator .* edge|user edge exists)/m)
    expect(out).toMatch(/^\+ install -d -o edge -g edge -m 0750 \/var\/lib\/edge-coordinator$/m)
    expect(out).toMatch(/^\+ write \/etc\/systemd\/system\/edge-coordinator\.service/m)
    expect(out).toContain(`    ExecStart=${process.execPath} --no-node-snapshot --max-semi-space-size=4 ${join(tmp.dir, 'opt/edge-coordinator')}/bin/edge-coordinator.js start --config /etc/edge-coordinator/config.json`)
    expect(out).toMatch(/^\+ write \/etc\/systemd\/journald\.conf\.d\/50-edge-coordinator\.conf/m)
    expect(out).toMatch(/^\+ systemctl enable edge-coordinator\.service$/m)
    expect(out).toMatch(/^\+ systemctl restart edge-coordinator\.service$/m)
    expect(existsSync(join(tmp.dir, 'opt'))).toBe(false)
  })

  it('writes a config the coordinator accepts', () => {
    const out = dryRun()
    if (!out.includes('+ write /etc/edge-coordinator/config.json')) return expect(out).toMatch(/keeping the existing \/etc\/edge-coordinator\/config\.json/)
    const block = out.split('+ write /etc/edge-coordinator/config.json')[1]?.split('\n').slice(1) ?? []
    const json = block.slice(0, block.findIndex((l) => !l.startsWith('    '))).map((l) => l.slice(4)).join('\n')
    const file = join(tmp.dir, 'config.json')
    writeFileSync(file, json)
    const config = loadConfig({ file })
    expect(config.dataDir).toBe('/var/lib/edge-coordinator')
    expect(config.listeners.mqtts?.host).toBe('0.0.0.0')
    expect(config.hardware.profile).toBe('auto')
  })

  it('refuses unknown options', () => {
    const r = spawnSync('bash', [INSTALL, '--dry-rub'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/unknown option '--dry-rub'/)
  })
})

/** Waits `ms`, inside the sandbox, then reports `done` on a shadow: a queued call with a visible effect. */
const SLOW_TASK = `var __edgeTask = (() => {
  const exports = {};
  exports.handler = async (event, ctx) => {
    await new Promise((resolve) => setTimeout(resolve, event.payload.ms));
    await ctx.shadow.update('slow-thing', { state: { reported: { done: event.payload.n } } });
    return event.payload.n;
  };
  return exports;
})()`

describe('graceful shutdown on SIGTERM', () => {
  const tmp = tempDir('edge-sigterm-')
  let daemon: Daemon | undefined
  const clients: MqttClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true)
    if (daemon !== undefined && daemon.child.exitCode === null) await killHard(daemon)
    tmp.remove()
  })

  it('exits 0 within the deadline, with queued messages and task calls kept', async () => {
    const config = join(tmp.dir, 'config.json')
    writeFileSync(config, JSON.stringify({
      log: { level: 'info', pretty: false },
      tasks: { allowUnsigned: true },
      policies: [{ name: 'feeder', statements: [{ effect: 'allow', actions: ['publish'], resources: ['things/+/inbox'] }] }],
      auth: { anonymousPolicies: ['feeder'] },
    }))
    const args = ['--config', config, '--data-dir', join(tmp.dir, 'data')]
    daemon = await startDaemon(args)
    const mqttUrl = (d: Daemon): string => `mqtt://127.0.0.1:${d.endpoints.mqtt.port}`
    const httpUrl = `http://127.0.0.1:${daemon.endpoints.http.port}`

    const sensor = await connect(mqttUrl(daemon), { clientId: 'sensor-1', clean: false })
    await sensor.subscribeAsync('things/sensor-1/inbox', { qos: 1 })
    await sensor.endAsync()
    const feeder = await connect(mqttUrl(daemon), { clientId: 'feeder-1' })
    clients.push(feeder)
    for (let i = 0; i < 50; i++) await feeder.publishAsync('things/sensor-1/inbox', `m-${i}`, { qos: 1 })

    const manifest = { name: 'slow-writer', version: '1.0.0', entry: 'index.js', triggers: [{ type: 'invoke' }], permissions: { devices: ['slow-thing'] } }
    const installed = await fetch(`${httpUrl}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: encodeBundle({ manifestText: JSON.stringify(manifest), code: SLOW_TASK }) })
    expect(installed.status).toBe(201)
    // The caller's connection is cut at shutdown; the call itself must still finish.
    fetch(`${httpUrl}/v1/tasks/slow-writer/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms: 600, n: 7 }) }).catch(() => undefined)
    await new Promise((r) => setTimeout(r, 150))

    const closed = new Promise<void>((resolve) => feeder.once('close', () => resolve()))
    const t0 = Date.now()
    daemon.child.kill('SIGTERM')
    const code = await daemon.exited
    expect(code).toBe(0)
    expect(Date.now() - t0).toBeLessThan(10_000)
    await closed
    expect(daemon.logs.map((l) => l['msg'])).toContain('coordinator stopped')

    daemon = await startDaemon(args)
    const back = await connect(mqttUrl(daemon), { clientId: 'sensor-1', clean: false })
    clients.push(back)
    const received: string[] = []
    back.on('message', (_topic, payload) => received.push(payload.toString()))
    await expect.poll(() => received.length, { timeout: 5000 }).toBe(50)
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => `m-${i}`))
    const shadow = await fetch(`http://127.0.0.1:${daemon.endpoints.http.port}/things/slow-thing/shadow`)
    expect(((await shadow.json()) as { state: { reported: { done: number } } }).state.reported.done).toBe(7)
  })
})

describe('the daemon under a notify socket (Type=notify)', () => {
  const tmp = tempDir('edge-notify-')
  let daemon: Daemon | undefined
  afterEach(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) await killHard(daemon)
    tmp.remove()
  })

  it.skipIf(!hasNotify)('says READY=1 when listening, pings the watchdog, and says STOPPING=1 on SIGTERM', async () => {
    const socket = join(tmp.dir, 'notify.sock')
    const manager = spawn('python3', ['-u', '-c', NOTIFY_LISTENER, socket], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const received: string[] = []
      const lines = createInterface({ input: manager.stdout! })
      await new Promise((resolve) => lines.once('line', resolve))
      lines.on('line', (l) => received.push(l))
      daemon = await startDaemon(['--data-dir', join(tmp.dir, 'data')], 15_000, { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '200000' })
      await expect.poll(() => received, { timeout: 5000 }).toContain('READY=1 STATUS=listening')
      await expect.poll(() => received.filter((m) => m === 'WATCHDOG=1').length, { timeout: 5000 }).toBeGreaterThanOrEqual(2)
      daemon.child.kill('SIGTERM')
      expect(await daemon.exited).toBe(0)
      expect(received).toContain('STOPPING=1 STATUS=stopping')
    } finally {
      manager.kill()
    }
  })
})
