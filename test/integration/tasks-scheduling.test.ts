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

describe('fair scheduling: manifest limits are requests, granted up to tasks.caps', () => {
  let h: TaskHarness
  // Four global slots, so a task may hold at most two (half, the default share).
  beforeEach(async () => {
    h = await taskHarness({ maxConcurrentCalls: 4, caps: { cpuMsPerCall: 200, wallMsPerCall: 1000, queueSize: 3 } })
  })
  afterEach(async () => {
    await h.close()
  })

  const greedy = { maxConcurrent: 64, cpuMsPerCall: 60_000, wallMsPerCall: 600_000 }
  const spinBody = `exports.handler = async (event) => { if (event.payload === 'spin') for (;;) {} return event.payload }`

  it('keeps a slot-hog to its share while a well-behaved task loses no call, and marks the hog broken with the reason', async () => {
    await h.service.install(bundle(manifest('hog', { limits: greedy }), 'exports.handler = async () => { for (;;) {} }'))
    await h.service.install(bundle(manifest('good'), echoBody))
    const hogCalls = Array.from({ length: 64 }, (_, i) => h.service.invoke('hog', i).then(() => 'ok', (e: { code: string }) => e.code))
    const broken = eventually(() => h.service.get('hog')?.state === 'broken', 20_000, 'the hog to be marked broken')
    let peak = 0
    let served = 0
    let done = false
    void broken.finally(() => {
      done = true
    })
    while (!done) {
      await expect(h.service.invoke('good', served)).resolves.toMatchObject({ payload: served })
      peak = Math.max(peak, h.service.get('hog')?.metrics.running ?? 0)
      served++
    }
    await broken
    expect(served).toBeGreaterThan(0)
    expect(peak).toBe(2)
    // The granted queue (2 running + 3 waiting) accepted five calls. Each ran into the granted CPU
    // limit, or was cut off beside one that did: a call still spinning at its limit takes its isolate with it.
    const outcomes = await Promise.all(hogCalls)
    expect(outcomes.slice(5)).toEqual(Array<string>(59).fill('COORD_TASK_QUEUE_FULL'))
    expect(outcomes.slice(0, 5).filter((c) => c !== 'COORD_SANDBOX_CPU_LIMIT' && c !== 'COORD_SANDBOX_DISPOSED')).toEqual([])
    expect(outcomes.slice(0, 5)).toContain('COORD_SANDBOX_CPU_LIMIT')
    expect(h.service.get('hog')).toMatchObject({
      state: 'broken',
      lastError: 'COORD_SANDBOX_CPU_LIMIT: task hog@1.0.0: handler "handler" exceeded its CPU time limit of 200 ms',
      limits: { requested: { maxConcurrent: 64, cpuMsPerCall: 60_000, wallMsPerCall: 600_000 }, granted: { maxConcurrent: 2, cpuMsPerCall: 200, wallMsPerCall: 1000 } },
      metrics: { calls: 5, failures: 5, rejected: 59, running: 0 },
    })
    expect(h.service.get('good')).toMatchObject({ state: 'running', metrics: { failures: 0, rejected: 0 } })
  })

  it('reports a task that runs into its limit as failing while it still runs, with the granted limit', async () => {
    await h.service.install(bundle(manifest('sometimes', { limits: greedy }), spinBody))
    await expect(h.service.invoke('sometimes', 'spin')).rejects.toMatchObject({ code: 'COORD_SANDBOX_CPU_LIMIT' })
    const failing = {
      state: 'running',
      lastError: 'COORD_SANDBOX_CPU_LIMIT: task sometimes@1.0.0: handler "handler" exceeded its CPU time limit of 200 ms',
      metrics: { calls: 1, failures: 1 },
    }
    expect(h.service.get('sometimes')).toMatchObject(failing)
    // A later success ends the failure streak; the last failure stays on record.
    await expect(h.service.invoke('sometimes', 'fine')).resolves.toBe('fine')
    expect(h.service.get('sometimes')).toMatchObject({ ...failing, metrics: { calls: 2, failures: 1 } })
  })

  it('grants limits above the caps at the caps, logs what it trimmed, and keeps requests within them', async () => {
    const info = await h.service.install(bundle(manifest('greedy', { limits: { ...greedy, queueSize: 100_000 } }), echoBody))
    expect(info.limits).toEqual({
      requested: { memoryMb: 32, cpuMsPerCall: 60_000, wallMsPerCall: 600_000, maxConcurrent: 64, queueSize: 100_000 },
      granted: { memoryMb: 32, cpuMsPerCall: 200, wallMsPerCall: 1000, maxConcurrent: 2, queueSize: 3 },
    })
    const trimmed = h.service.logs('greedy', 100).find((e) => e.msg === 'limits granted below the request (tasks.caps)')
    expect(trimmed?.fields).toEqual({
      cpuMsPerCall: { requested: 60_000, granted: 200 }, wallMsPerCall: { requested: 600_000, granted: 1000 },
      maxConcurrent: { requested: 64, granted: 2 }, queueSize: { requested: 100_000, granted: 3 },
    })
    const modest = await h.service.install(bundle(manifest('modest', { limits: { queueSize: 3, wallMsPerCall: 1000 } }), echoBody))
    expect(modest.limits.granted).toEqual(modest.limits.requested)
    expect(h.service.logs('modest', 100).map((e) => e.msg)).not.toContain('limits granted below the request (tasks.caps)')
  })
})
