/**
 * Durability of the outbox under kill -9: a child process enqueues in a loop and prints each id
 * once the call that accepted it has returned; the test SIGKILLs it mid-stream, reopens the file,
 * and every printed id must be there.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Outbox } from '../../coordinator/cloud/index.js'
import { seqOf, startAedes, waitUntil, type TestAedes } from '../helpers/cloud.js'
import { tempDir } from '../helpers/tmp.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const WRITER = join(root, 'test/helpers/outbox-writer.mjs')
const DRAINER = join(root, 'test/helpers/cloud-link-child.mjs')

/** Runs the writer until it has reported `enough` ids, then SIGKILLs it; resolves with the ids. */
function writeThenKill(file: string, synchronous: 'full' | 'normal', enough: number): Promise<number[]> {
  const child = spawn(process.execPath, [WRITER, file, synchronous], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.split('\n').length > enough) child.kill('SIGKILL')
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal !== 'SIGKILL') return reject(new Error(`writer exited with ${code}: ${err}`))
      // The last line may be cut in the middle: only complete lines were reported.
      resolve(out.split('\n').slice(0, -1).map(Number))
    })
  })
}

describe('outbox durability under kill -9', () => {
  let tmp: ReturnType<typeof tempDir>
  beforeEach(() => { tmp = tempDir('outbox-kill-') })
  afterEach(() => tmp.remove())

  it.each(['full', 'normal'] as const)('keeps every id reported as accepted (synchronous=%s)', async (synchronous) => {
    expect(existsSync(join(root, 'dist/coordinator/cloud/index.js')), 'run `npx tsc -p tsconfig.build.json` first').toBe(true)
    const file = join(tmp.dir, `outbox-${synchronous}.sqlite`)
    const reported = await writeThenKill(file, synchronous, 5000)
    expect(reported.length).toBeGreaterThanOrEqual(5000)

    const outbox = Outbox.open(file)
    try {
      const stored = new Set(outbox.peek(1_000_000).map((m) => m.id))
      const missing = reported.filter((id) => !stored.has(id))
      expect(missing).toEqual([])
      expect(outbox.stats().queued).toBeGreaterThanOrEqual(reported.length)
      const ordered = outbox.peek(1_000_000).map((m) => m.topic)
      expect(ordered[0]).toBe('up/writer/0')
      expect(ordered.every((t, i) => t === `up/writer/${i}`)).toBe(true)
    } finally {
      outbox.close()
    }
  })
})

describe('cloud link under kill -9', () => {
  let tmp: ReturnType<typeof tempDir>
  let broker: TestAedes | undefined
  const children: ChildProcess[] = []
  beforeEach(() => { tmp = tempDir('cloud-link-kill-') })
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await broker?.stop()
    tmp.remove()
  })

  /** Starts the draining child and resolves once it says it is running. */
  function startDrainer(file: string, port: number, count: number): Promise<{ child: ChildProcess; exited: Promise<void> }> {
    const child = spawn(process.execPath, [DRAINER, file, String(port), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] })
    children.push(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('drainer not ready')), 10_000)
      createInterface({ input: child.stdout! }).once('line', () => {
        clearTimeout(timer)
        resolve({ child, exited })
      })
    })
  }

  it('a new process on the same file delivers everything the killed one had not, first arrivals in order', async () => {
    expect(existsSync(join(root, 'dist/coordinator/cloud/index.js')), 'run `npx tsc -p tsconfig.build.json` first').toBe(true)
    const total = 5000
    broker = await startAedes()
    const b = broker
    const file = join(tmp.dir, 'outbox.sqlite')
    const first = await startDrainer(file, b.port, total)
    await waitUntil(() => b.received.length >= 1500, 15_000, '1500 messages from the first process')
    first.child.kill('SIGKILL')
    await first.exited
    const atKill = b.received.length
    expect(atKill).toBeLessThan(total)

    const second = await startDrainer(file, b.port, total)
    const unique = (): number[] => {
      const seen = new Set<number>()
      return b.received.map((r) => seqOf(r.payload)).filter((s) => !seen.has(s) && seen.add(s) !== undefined)
    }
    await waitUntil(() => unique().length === total, 20_000, 'every message from the second process')
    expect(unique()).toEqual(Array.from({ length: total }, (_, i) => i))
    second.child.stdin?.end()
    await second.exited
    const outbox = Outbox.open(file)
    try {
      expect(outbox.stats()).toMatchObject({ queued: 0, delivered: total, deadLettered: 0 })
    } finally {
      outbox.close()
    }
    console.info(`kill -9 mid-drain: ${atKill} of ${total} at the broker before the kill, ${b.received.length - total} duplicates`)
  })
})
