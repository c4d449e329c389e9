import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { SystemdNotifier, watchdogIntervalMs } from '../../../hardware/index.js'
import { tempDir } from '../../helpers/tmp.js'

/** Receives notify datagrams the way the service manager does, printing each one. */
const NOTIFY_LISTENER = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print("bound", flush=True)',
  'while True:',
  '    print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
].join('\n')

const hasRealNotify = spawnSync('systemd-notify', ['--version']).status === 0 && spawnSync('python3', ['-c', 'import socket']).status === 0

describe('systemd notifications', () => {
  const tmp = tempDir('edge-notify-')
  afterAll(() => tmp.remove())

  it('pings the watchdog at half of WatchdogSec, and only for its own process', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000)
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000)
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeNull()
    expect(watchdogIntervalMs({}, 42)).toBeNull()
  })

  it('does nothing outside systemd', () => {
    expect(SystemdNotifier.fromEnv({ env: {}, log: silentLogger() })).toBeNull()
  })

  it('sends READY=1, watchdog pings until stopping, then STOPPING=1 (through a fake systemd-notify)', async () => {
    const log = join(tmp.dir, 'notify.log')
    writeFileSync(join(tmp.dir, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> "${log}"\n`)
    chmodSync(join(tmp.dir, 'systemd-notify'), 0o755)
    const calls = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [])
    const env = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '40000' }
    const notifier = SystemdNotifier.fromEnv({ env, toolDir: tmp.dir, log: silentLogger() })
    expect(notifier?.watchdogIntervalMs).toBe(20)
    await notifier?.ready('listening')
    notifier?.startWatchdog()
    await expect.poll(() => calls().filter((c) => c.endsWith('WATCHDOG=1')).length, { timeout: 2000 }).toBeGreaterThanOrEqual(2)
    await notifier?.stopping()
    await new Promise((r) => setTimeout(r, 80))
    const sent = calls().length
    await new Promise((r) => setTimeout(r, 80))
    expect(calls().length).toBe(sent)
    expect(calls()[0]).toBe('/run/systemd/notify READY=1 STATUS=listening')
    expect(calls()).toContain('/run/systemd/notify STOPPING=1 STATUS=stopping')
  })

  it.skipIf(!hasRealNotify)('reaches a notify socket through the real systemd-notify', async () => {
    const socket = join(tmp.dir, 'notify.sock')
    const manager = spawn('python3', ['-u', '-c', NOTIFY_LISTENER, socket], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const received: string[] = []
      const lines = createInterface({ input: manager.stdout! })
      await new Promise((resolve) => lines.once('line', resolve))
      lines.on('line', (l) => received.push(l))
      const notifier = SystemdNotifier.fromEnv({ env: { ...process.env, NOTIFY_SOCKET: socket }, log: silentLogger() })
      await notifier?.ready('listening')
      await expect.poll(() => received, { timeout: 3000 }).toContain('READY=1 STATUS=listening')
    } finally {
      manager.kill()
    }
  })
})
