/**
 * Data at rest: the data directory and its SQLite files (shadows, queued messages, token hashes)
 * are owner-only, and a corrupted database stops start-up with a message naming the file instead
 * of a daemon that says "ready" over it. Real daemons as child processes, real SQLite files.
 */
import { spawn } from 'node:child_process'
import { chmodSync, closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BIN, startDaemon, type Daemon } from '../helpers/daemon.js'
import { CLOUD_BIN, startCloudDaemon } from '../helpers/cloud-shim.js'
import { tempDir } from '../helpers/tmp.js'

const modeOf = (path: string): number => statSync(path).mode & 0o777

interface Exit {
  code: number | null
  output: string
}

/** Runs `start` to its end (it is expected to refuse): exit code and everything it printed. */
function runToExit(bin: string, args: string[]): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', bin, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    child.once('exit', (code) => resolve({ code, output }))
  })
}

/** Overwrites the middle third of a file, page-aligned, with bytes no SQLite page holds. */
function corruptMiddle(file: string): void {
  const size = statSync(file).size
  const page = 4096
  const start = Math.max(page, Math.floor(size / 3 / page) * page)
  const end = Math.min(size, Math.ceil((2 * size) / 3 / page) * page)
  const fd = openSync(file, 'r+')
  try {
    writeSync(fd, Buffer.alloc(end - start, 0xa5), 0, end - start, start)
  } finally {
    closeSync(fd)
  }
}

/**
 * A graceful stop (which checkpoints the WAL into the database file). The daemon installs its
 * SIGTERM handler just after logging ready; an answered request proves it got past that point.
 */
async function stopped(daemon: Daemon): Promise<void> {
  expect((await fetch(`http://127.0.0.1:${daemon.endpoints.http.port}/healthz`)).status).toBe(200)
  daemon.child.kill('SIGTERM')
  expect(await daemon.exited).toBe(0)
}

describe('data at rest', () => {
  let tmp: ReturnType<typeof tempDir>
  beforeEach(() => {
    tmp = tempDir()
  })
  afterEach(() => tmp.remove())

  it('should create the coordinator data directory 0700 and its databases, token and keys 0600', async () => {
    const dataDir = join(tmp.dir, 'coordinator')
    const daemon = await startDaemon(['--data-dir', dataDir])
    const files = ['coordinator.db', 'coordinator.db-wal', 'broker.db', 'broker.db-wal', 'api-token', 'pki/ca.key', 'pki/server.key']
    try {
      expect(modeOf(dataDir)).toBe(0o700)
      for (const f of files) expect([f, modeOf(join(dataDir, f))]).toEqual([f, 0o600])
    } finally {
      await stopped(daemon)
    }
  })

  it('should narrow a data directory and database files an older version left readable by others', async () => {
    const dataDir = join(tmp.dir, 'old')
    const first = await startDaemon(['--data-dir', dataDir])
    await stopped(first)
    chmodSync(dataDir, 0o755)
    chmodSync(join(dataDir, 'coordinator.db'), 0o644)
    const again = await startDaemon(['--data-dir', dataDir])
    try {
      expect(modeOf(dataDir)).toBe(0o700)
      expect(modeOf(join(dataDir, 'coordinator.db'))).toBe(0o600)
      expect(again.logs.some((l) => l['msg'] === 'the data directory was readable by others: made it owner-only (0700)')).toBe(true)
    } finally {
      await stopped(again)
    }
  })

  it('should create the cloud shim data directory 0700 and its databases 0600', async () => {
    const dataDir = join(tmp.dir, 'cloud')
    const shim = await startCloudDaemon(['--data-dir', dataDir, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0'])
    try {
      expect(modeOf(dataDir)).toBe(0o700)
      for (const f of ['cloud.db', 'broker.db', 'api-token', 'pki/ca.key']) expect([f, modeOf(join(dataDir, f))]).toEqual([f, 0o600])
    } finally {
      await shim.stop()
    }
  })

  it.each(['coordinator.db', 'broker.db'])('should refuse to start over a corrupted %s, naming the file and the recovery step', async (name) => {
    const dataDir = join(tmp.dir, `corrupt-${name}`)
    const first = await startDaemon(['--data-dir', dataDir])
    await stopped(first)
    const file = join(dataDir, name)
    // A clean stop checkpoints the WAL into the file and removes it: the file is the database.
    expect(existsSync(`${file}-wal`)).toBe(false)
    corruptMiddle(file)
    const r = await runToExit(BIN, ['--data-dir', dataDir, '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'])
    expect(r.code).not.toBe(0)
    expect(r.output).toContain(`database ${file} is corrupted`)
    expect(r.output).toContain('restore them from a backup')
    expect(r.output).not.toContain('coordinator ready')
  })

  it('should refuse to start the cloud shim over a corrupted cloud.db', async () => {
    const dataDir = join(tmp.dir, 'cloud-corrupt')
    const args = ['--data-dir', dataDir, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0']
    const shim = await startCloudDaemon(args)
    const port = (shim.ready['endpoints'] as { http: { port: number } }).http.port
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    await shim.stop()
    expect(existsSync(`${join(dataDir, 'cloud.db')}-wal`)).toBe(false)
    const file = join(dataDir, 'cloud.db')
    corruptMiddle(file)
    const r = await runToExit(CLOUD_BIN, args)
    expect(r.code).not.toBe(0)
    expect(r.output).toContain(`database ${file} is corrupted`)
    expect(r.output).not.toContain('cloud shim ready')
  })
})
