import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bundle, echoBody, eventually, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'

const sleepBody = (ms: number): string => `exports.handler = async (event, ctx) => {
  await new Promise((resolve) => setTimeout(resolve, ${ms}))
  return { version: ctx.task.version, seq: event.payload }
}`

const throwingBody = `exports.handler = async () => { throw new Error('always fails') }`
const memoryBombBody = `exports.handler = async () => { const hoard = []; for (;;) hoard.push(new Array(1e5).fill(hoard.length)) }`

/** Invokes until the task refuses as broken; returns every outcome code in order. */
async function invokeUntilBroken(h: TaskHarness, name: string, max = 20): Promise<string[]> {
  const codes: string[] = []
  for (let i = 0; i < max && codes.at(-1) !== 'COORD_TASK_BROKEN'; i++) {
    codes.push(await h.service.invoke(name, i).then(() => 'ok', (e: { code: string }) => e.code))
  }
  return codes
}

/** Keeps a well-behaved task busy until `until` settles; resolves with how many calls succeeded. */
async function keepServing(h: TaskHarness, name: string, until: Promise<unknown>): Promise<number> {
  let done = false
  void until.finally(() => {
    done = true
  })
  let served = 0
  while (!done) {
    await expect(h.service.invoke(name, served)).resolves.toMatchObject({ payload: served })
    served++
  }
  return served
}

describe('task scheduling and failure handling', () => {
  let h: TaskHarness
  beforeEach(async () => {
    h = await taskHarness()
  })
  afterEach(async () => {
    await h.close()
  })

  it('refuses calls beyond maxConcurrent + queueSize, counts and logs them, and serves the rest', async () => {
    await h.service.install(bundle(manifest('slow', { limits: { maxConcurrent: 1, queueSize: 2 } }), sleepBody(150)))
    const outcomes = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => h.service.invoke('slow', i).then(() => 'ok', (e: { code: string }) => e.code)))
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'COORD_TASK_QUEUE_FULL', 'COORD_TASK_QUEUE_FULL', 'COORD_TASK_QUEUE_FULL'])
    expect(h.service.get('slow')?.metrics).toMatchObject({ calls: 3, rejected: 3, queueDepth: 0 })
    expect(h.service.logs('slow', 100).filter((e) => e.msg === 'call refused: queue full')).toHaveLength(3)
  })

  it('marks an always-throwing task broken after backing off, while another task keeps serving', async () => {
    await h.service.install(bundle(manifest('bad'), throwingBody))
    await h.service.install(bundle(manifest('good'), echoBody))
    const started = Date.now()
    const failing = invokeUntilBroken(h, 'bad')
    const served = await keepServing(h, 'good', failing)
    const codes = await failing
    expect(codes).toEqual([...Array<string>(5).fill('COORD_SANDBOX_THREW'), 'COORD_TASK_BROKEN'])
    // Pauses of 20, 40 and 80 ms came before the 3rd, 4th and 5th failures.
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(served).toBeGreaterThan(0)
    expect(h.service.get('bad')).toMatchObject({ state: 'broken', lastError: expect.stringContaining('always fails'), metrics: { failures: 5 } })
    expect(h.service.get('good')).toMatchObject({ state: 'running', metrics: { failures: 0 } })
    const log = h.service.logs('bad', 100).map((e) => e.msg)
    expect(log.filter((m) => m === 'pausing before rebuilding the sandbox')).toHaveLength(3)
    expect(log).toContain('task marked broken after repeated failures')
  })

  it('rebuilds a sandbox lost to its memory limit, then marks the task broken', async () => {
    const limits = { memoryMb: 16, cpuMsPerCall: 5000, wallMsPerCall: 10_000 }
    await h.service.install(bundle(manifest('bomb', { limits }), memoryBombBody))
    await h.service.install(bundle(manifest('good'), echoBody))
    const failing = invokeUntilBroken(h, 'bomb')
    await keepServing(h, 'good', failing)
    expect(await failing).toEqual([...Array<string>(5).fill('COORD_SANDBOX_MEMORY'), 'COORD_TASK_BROKEN'])
    expect(h.service.get('bomb')).toMatchObject({ state: 'broken', lastError: expect.stringContaining('COORD_SANDBOX_MEMORY') })
    expect(h.service.logs('bomb', 100).filter((e) => e.msg === 'sandbox rebuilt')).toHaveLength(4)
    await expect(h.service.invoke('good', 'after')).resolves.toMatchObject({ payload: 'after' })
  }, 60_000)

  it('stops the triggers of a broken task, and startTask gives it a fresh start', async () => {
    await h.service.install(bundle(manifest('ticker', { triggers: [{ type: 'schedule', every: '100ms' }, { type: 'invoke' }] }), throwingBody))
    await eventually(() => h.service.get('ticker')?.state === 'broken', 5000, 'the ticker to break')
    const calls = h.service.get('ticker')?.metrics.calls
    await new Promise((r) => setTimeout(r, 300))
    expect(h.service.get('ticker')?.metrics.calls).toBe(calls)
    await expect(h.service.invoke('ticker', 1)).rejects.toMatchObject({ code: 'COORD_TASK_BROKEN' })
    expect(await h.service.startTask('ticker')).toMatchObject({ state: 'running', lastError: null })
    await eventually(() => (h.service.get('ticker')?.metrics.calls ?? 0) > (calls ?? 0), 2000, 'a tick after the restart')
  })

  it('replaces a task under a steady stream of calls without losing or failing any', async () => {
    const limits = { maxConcurrent: 2, queueSize: 1000 }
    await h.service.install(bundle(manifest('app', { limits }), sleepBody(5)))
    const calls: Array<Promise<{ version: string; seq: number }>> = []
    let installFrom = -1
    let installedAt = -1
    let backlogAtSwitch = 0
    let replacing: Promise<unknown> | undefined
    for (let seq = 0; seq < 400; seq++) {
      calls.push(h.service.invoke('app', seq) as Promise<{ version: string; seq: number }>)
      if (seq === 150) {
        installFrom = seq
        replacing = h.service.install(bundle(manifest('app', { version: '2.0.0', limits }), sleepBody(5))).then(() => {
          installedAt = calls.length
          backlogAtSwitch = h.service.get('app')?.metrics.queueDepth ?? 0
        })
      }
      await new Promise((r) => setTimeout(r, 1))
    }
    await replacing
    const results = await Promise.all(calls)
    // The old version still had accepted calls waiting when it was replaced; they finished on it.
    expect(backlogAtSwitch).toBeGreaterThan(0)
    expect(results.map((r) => r.seq)).toEqual([...Array(400).keys()])
    const versions = results.map((r) => r.version)
    expect(versions.slice(0, installFrom + 1).every((v) => v === '1.0.0')).toBe(true)
    expect(installedAt).toBeGreaterThan(installFrom)
    expect(versions.slice(installedAt).every((v) => v === '2.0.0')).toBe(true)
    // One switch: every call issued after the first 2.0.0 answer was also served by 2.0.0.
    const first = versions.indexOf('2.0.0')
    expect(versions.slice(first).every((v) => v === '2.0.0')).toBe(true)
    expect(h.service.get('app')).toMatchObject({ version: '2.0.0', state: 'running', metrics: { calls: 400, failures: 0, rejected: 0 } })
    await eventually(() => h.service.get('app')?.metrics.queueDepth === 0)
  })
})
