import { getHeapStatistics } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { SandboxError, TaskLimitError, type TaskEvent } from '../../../coordinator/sandbox/index.js'
import { bundle, eventually, sandboxFor } from './recording-host.js'

const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })
const MB = 1024 * 1024

const rejection = async (p: Promise<unknown>): Promise<Error> => {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(Error)
  return e as Error
}

describe('timers of a failed call', () => {
  // The failing call arms a 10 ms interval; the next call returns only after a 150 ms timeout of
  // its own, by which time a surviving interval would have ticked many times.
  const ARMER = bundle(`exports.handler = (e, ctx) => {
    if (e.payload === 'arm-and-fail') { setInterval(() => ctx.log.info('tick'), 10); throw new Error('failed after arming') }
    return new Promise((resolve) => setTimeout(() => resolve('waited'), 150))
  }`)

  it('are cleared when the call fails, in an on-demand task', async () => {
    const { sandbox, host } = await sandboxFor(ARMER)
    expect((await rejection(sandbox.call(invoke('arm-and-fail')))).message).toContain('failed after arming')
    expect(await sandbox.call(invoke('wait'))).toBe('waited')
    expect(host.logs.filter((l) => l.message === 'tick')).toEqual([])
  })

  it('keep running in a long-lived task, whose timers are its own loop', async () => {
    const { sandbox, host } = await sandboxFor(ARMER, { mode: 'long-lived' })
    await rejection(sandbox.call(invoke('arm-and-fail')))
    expect(await sandbox.call(invoke('wait'))).toBe('waited')
    expect(host.logs.filter((l) => l.message === 'tick').length).toBeGreaterThan(0)
  })
})

describe('timer CPU budget', () => {
  it('holds 64 zero-delay intervals at tasks.timerCpuMsPerSecond and reports COORD_TASK_LIMIT once per second', async () => {
    const faults: Error[] = []
    const { sandbox } = await sandboxFor(
      bundle(`let fired = 0
        exports.start = () => { for (let i = 0; i < 64; i++) setInterval(() => { fired++ }, 0) }
        exports.handler = () => fired`),
      { mode: 'long-lived', bounds: { timerCpuMsPerSecond: 20 }, onFault: (e) => faults.push(e) },
    )
    await eventually(() => expect(faults.length).toBeGreaterThanOrEqual(2), 5000)
    const limit = faults[0] as TaskLimitError
    expect(limit).toBeInstanceOf(TaskLimitError)
    expect(limit.code).toBe('COORD_TASK_LIMIT')
    expect(limit.limit).toBe('tasks.timerCpuMsPerSecond')
    expect(limit.message).toMatch(/^task probe@1\.0\.0: timer callbacks used \d+ ms of CPU within one second; the budget is 20 ms \(tasks\.timerCpuMsPerSecond\); timers are held until the second ends$/)
    // Held, the intervals run only until each second's budget is spent: far below 64 x 100 a second.
    const before = (await sandbox.call(invoke(null))) as number
    await eventually(() => expect(faults.length).toBeGreaterThanOrEqual(4), 5000)
    const after = (await sandbox.call(invoke(null))) as number
    const seconds = faults.length - 2
    expect((after - before) / seconds).toBeLessThan(64 * 100 * 0.5)
    expect(sandbox.disposed).toBe(false)
  })

  it('lets one interval of a well-behaved task run freely', async () => {
    const faults: Error[] = []
    const { sandbox } = await sandboxFor(
      bundle(`let fired = 0
        exports.handler = (e) => e.payload === 'arm' ? (setInterval(() => { fired++ }, 10), 'armed') : fired`),
      { onFault: (e) => faults.push(e) },
    )
    expect(await sandbox.call(invoke('arm'))).toBe('armed')
    while (((await sandbox.call(invoke(null))) as number) < 50) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(faults).toEqual([])
  })
})

describe('values crossing the bridge', () => {
  const hostHeap = (): number => getHeapStatistics().used_heap_size

  it('refuses a huge result with COORD_TASK_LIMIT before it is copied into the host', async () => {
    const limits = { memoryMb: 256, cpuMsPerCall: 10_000, wallMsPerCall: 20_000 }
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = (e) => {
        if (e.payload === 'text') return 'x'.repeat(96 * 1024 * 1024)
        if (e.payload === 'bytes') return { data: new Uint8Array(96 * 1024 * 1024) }
        if (e.payload === 'fan-out') { let o = { leaf: 'x'.repeat(100) }; for (let i = 0; i < 40; i++) o = { a: o, b: o }; return o }
        return 'small'
      }`),
      { limits },
    )
    for (const payload of ['text', 'bytes', 'fan-out']) {
      const heap = hostHeap()
      const arrayBuffers = process.memoryUsage().arrayBuffers
      const e = await rejection(sandbox.call(invoke(payload)))
      expect(e).toBeInstanceOf(TaskLimitError)
      expect(e).toMatchObject({
        code: 'COORD_TASK_LIMIT',
        limit: 'tasks.maxBridgeBytes',
        message: 'task probe@1.0.0: the result of handler "handler" is larger than 1048576 bytes (tasks.maxBridgeBytes); refused before copying',
      })
      // 96 MB (or 2^40 leaves written out as JSON) never reached the host's heap.
      expect(hostHeap() - heap).toBeLessThan(16 * MB)
      expect(process.memoryUsage().arrayBuffers - arrayBuffers).toBeLessThan(16 * MB)
    }
    expect(await sandbox.call(invoke('again'))).toBe('small')
  })

  it('refuses host-call arguments over the bound inside the isolate: the host never sees the call, and a caught refusal is a fault', async () => {
    const faults: Error[] = []
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (e, ctx) => {
        try { await ctx.state.set('k', 'x'.repeat(2 * 1024 * 1024)); return 'stored' }
        catch (err) { if (e.payload === 'rethrow') throw err; return [err.code, err.limit, err.message] }
      }`),
      { onFault: (e) => faults.push(e) },
    )
    expect(await sandbox.call(invoke('catch'))).toEqual([
      'COORD_TASK_LIMIT', 'tasks.maxBridgeBytes', 'a kvSet request is larger than 1048576 bytes (tasks.maxBridgeBytes); refused before copying',
    ])
    expect(host.calls).toEqual([])
    expect(faults.map((f) => [(f as TaskLimitError).code, f.message])).toEqual([
      ['COORD_TASK_LIMIT', 'task probe@1.0.0: a kvSet request is larger than 1048576 bytes (tasks.maxBridgeBytes); refused before copying'],
    ])
    // A call that fails for it counts once, as that failed call.
    const e = (await rejection(sandbox.call(invoke('rethrow')))) as SandboxError
    expect(e.taskError?.code).toBe('COORD_TASK_LIMIT')
    expect(faults).toHaveLength(1)
  })

  it('refuses host answers and events over the bound before copying them into the isolate', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (e, ctx) => ctx.state.get('big').then(() => 'read', (err) => err.code)`),
      { bounds: { maxBridgeBytes: 64 * 1024 } },
    )
    host.kv.set('big', 'y'.repeat(100 * 1024))
    expect(await sandbox.call(invoke(null))).toBe('COORD_TASK_LIMIT')
    const e = await rejection(sandbox.call(invoke('z'.repeat(100 * 1024))))
    expect(e).toMatchObject({ code: 'COORD_TASK_LIMIT', message: 'task probe@1.0.0: the event is larger than 65536 bytes (tasks.maxBridgeBytes); refused before copying' })
  })

  it('lets only what the host keeps of a log line cross: 8192 characters, and no fields larger than the bound', async () => {
    const limits = { memoryMb: 128, cpuMsPerCall: 10_000, wallMsPerCall: 20_000 }
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = (e, ctx) => { ctx.log.info('x'.repeat(48 * 1024 * 1024), { blob: 'y'.repeat(2 * 1024 * 1024) }); return 'logged' }`),
      { limits },
    )
    const heap = hostHeap()
    expect(await sandbox.call(invoke(null))).toBe('logged')
    expect(hostHeap() - heap).toBeLessThan(16 * MB)
    expect(host.logs).toHaveLength(1)
    expect(host.logs[0]?.message).toHaveLength(8192)
    expect(host.logs[0]?.fields).toEqual({ fields: `[dropped: ${2 * 1024 * 1024 + 11} characters of JSON, more than tasks.maxBridgeBytes]` })
  })

  it('copies values within the bound exactly, cycles and shared parts included', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = () => {
        const shared = { n: 1 }
        const out = { list: [shared, shared], map: new Map([['k', new Uint8Array([1, 2])]]), set: new Set(['a']), when: new Date(0) }
        out.self = out
        return out
      }`),
    )
    const out = (await sandbox.call(invoke(null))) as Record<string, unknown>
    expect(out['self']).toBe(out)
    expect(out['list']).toEqual([{ n: 1 }, { n: 1 }])
    expect(out['map']).toEqual(new Map([['k', new Uint8Array([1, 2])]]))
    expect(out['set']).toEqual(new Set(['a']))
    expect(out['when']).toEqual(new Date(0))
  })
})
