import { describe, expect, it } from 'vitest'
import { LOAD_CPU_FLOOR_MS, SandboxError, type TaskEvent } from '../../../coordinator/sandbox/index.js'
import { bundle, eventually, sandboxFor } from './recording-host.js'

const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })

const failure = async (p: Promise<unknown>): Promise<SandboxError> => {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(SandboxError)
  return e as SandboxError
}

const LOOPER = bundle(`exports.handler = async (event, ctx) => {
  if (event.payload === 'spin') for (;;) {}
  if (event.payload === 'spin-after-await') { await ctx.state.get('k'); for (;;) {} }
  return 'ok'
}`)

// A generous wall limit wherever CPU is the subject: on a loaded machine a loop may get a small
// share of a core, and must still reach its CPU limit first.
const CPU_LIMITS = { memoryMb: 32, cpuMsPerCall: 200, wallMsPerCall: 60_000 }

describe('CPU time limit', () => {
  it('stops an infinite loop with CPU_LIMIT by disposing its isolate, while another sandbox answers meanwhile', async () => {
    const { sandbox } = await sandboxFor(LOOPER, { limits: { ...CPU_LIMITS, cpuMsPerCall: 300 } })
    const { sandbox: other } = await sandboxFor(bundle(`exports.handler = (e) => e.payload * 2`))
    const started = Date.now()
    const spinning = failure(sandbox.call(invoke('spin')))
    let answered = 0
    while (Date.now() - started < 200) {
      expect(await other.call(invoke(21))).toBe(42)
      answered++
    }
    const e = await spinning
    expect(e.code).toBe('COORD_SANDBOX_CPU_LIMIT')
    expect(e.limit).toEqual({ kind: 'cpu', ms: 300 })
    expect(e.message).toBe('task probe@1.0.0: handler "handler" exceeded its CPU time limit of 300 ms')
    expect(answered).toBeGreaterThan(10)
    // Code that never yields can only be stopped with its isolate; the task runner builds another.
    expect(sandbox.disposed).toBe(true)
    expect((await failure(sandbox.call(invoke('again')))).code).toBe('COORD_SANDBOX_CPU_LIMIT')
  })

  it('interrupts an infinite loop that starts after an await', async () => {
    const { sandbox } = await sandboxFor(LOOPER, { limits: CPU_LIMITS })
    const e = await failure(sandbox.call(invoke('spin-after-await')))
    expect(e.code).toBe('COORD_SANDBOX_CPU_LIMIT')
    expect(e.limit?.kind).toBe('cpu')
  })

  it('fails other calls pending in the isolate with DISPOSED, naming the call that used up its CPU', async () => {
    const { sandbox, host } = await sandboxFor(LOOPER, { limits: CPU_LIMITS })
    host.delayMs = 5000
    const waiting = failure(sandbox.call(invoke('spin-after-await')))
    host.delayMs = 0
    const e = await failure(sandbox.call(invoke('spin')))
    expect(e.code).toBe('COORD_SANDBOX_CPU_LIMIT')
    const bystander = await waiting
    expect(bystander.code).toBe('COORD_SANDBOX_DISPOSED')
    expect(bystander.message).toBe('task probe@1.0.0: its isolate was disposed: task probe@1.0.0: handler "handler" exceeded its CPU time limit of 200 ms')
  })

  it('counts CPU across the awaits of one call, not per entry', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`const burn = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} }
        exports.handler = async (e, ctx) => { for (;;) { burn(60); await ctx.state.get('k') } }`),
      { limits: CPU_LIMITS },
    )
    // Each slice (at most 60 ms) fits the 200 ms limit; their sum does not.
    const e = await failure(sandbox.call(invoke(null)))
    expect(e.code).toBe('COORD_SANDBOX_CPU_LIMIT')
    expect(e.limit?.kind).toBe('cpu')
  })

  it('does not count time a call spends waiting, on the host or blocked in the isolate, as CPU time', async () => {
    // Atomics.wait holds the isolate's thread for 300 ms without using a CPU, as a descheduled
    // thread on a loaded gateway does; the old wall-clock "CPU" limit failed this call.
    const limits = { memoryMb: 32, cpuMsPerCall: 50, wallMsPerCall: 5000 }
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (e, ctx) => {
          await ctx.state.get('slow')
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
          return 'rested'
        }`),
      { limits },
    )
    host.delayMs = 300
    expect(await sandbox.call(invoke(null))).toBe('rested')
    expect(sandbox.metrics().cpuTimeMs).toBeLessThan(50)
    expect(sandbox.disposed).toBe(false)
  })

  it('stops an infinite loop inside a timer callback and reports it as a fault', async () => {
    const faults: Error[] = []
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = (e, ctx) => { setInterval(() => { ctx.log.info('fired'); for (;;) {} }, 10); return 'armed' }`),
      { limits: CPU_LIMITS, onFault: (e) => faults.push(e) },
    )
    expect(await sandbox.call(invoke('arm'))).toBe('armed')
    await eventually(() => expect(faults).toHaveLength(1))
    expect(faults[0]).toMatchObject({ code: 'COORD_SANDBOX_CPU_LIMIT', message: 'task probe@1.0.0: a timer callback exceeded its CPU time limit of 200 ms' })
    expect(host.logs).toHaveLength(1)
    expect(sandbox.disposed).toBe(true)
  })

  it('reports background work left behind by a finished call that hits the CPU limit as a fault', async () => {
    const faults: Error[] = []
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = (e, ctx) => { ctx.state.get('k').then(() => { ctx.log.info('looping'); for (;;) {} }); return 'returned' }`),
      { limits: CPU_LIMITS, onFault: (e) => faults.push(e) },
    )
    expect(await sandbox.call(invoke(true))).toBe('returned')
    await eventually(() => expect(faults).toHaveLength(1))
    expect(host.logs).toHaveLength(1)
    expect(faults.map((f) => [(f as SandboxError).code, f.message])).toEqual([
      ['COORD_SANDBOX_CPU_LIMIT', 'task probe@1.0.0: background work of a finished call exceeded its CPU time limit of 200 ms'],
    ])
  })

  it('gives top-level code its own limit, at least LOAD_CPU_FLOOR_MS', async () => {
    const started = Date.now()
    const e = await failure(sandboxFor(bundle(`for (;;) {}`), { limits: CPU_LIMITS }))
    expect(e.code).toBe('COORD_SANDBOX_CPU_LIMIT')
    expect(e.message).toBe(`task probe@1.0.0: its top-level code exceeded its CPU time limit of ${LOAD_CPU_FLOOR_MS} ms`)
    expect(Date.now() - started).toBeGreaterThanOrEqual(LOAD_CPU_FLOOR_MS)
  })
})

describe('wall time limit', () => {
  it('rejects TIMEOUT (wall) when awaited host calls take too long, and the late answer is harmless', async () => {
    const limits = { memoryMb: 32, cpuMsPerCall: 200, wallMsPerCall: 100 }
    const { sandbox, host } = await sandboxFor(bundle(`exports.handler = async (e, ctx) => { await ctx.state.get('slow'); return 'late' }`), { limits })
    host.delayMs = 300
    const e = await failure(sandbox.call(invoke(null)))
    expect(e.code).toBe('COORD_SANDBOX_TIMEOUT')
    expect(e.limit).toEqual({ kind: 'wall', ms: 100 })
    host.delayMs = 0
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await sandbox.call(invoke(null))).toBe('late')
  })

  it('interrupts code blocked inside the isolate at the wall limit with TIMEOUT (wall), keeping the isolate', async () => {
    const limits = { memoryMb: 32, cpuMsPerCall: 200, wallMsPerCall: 300 }
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = (e) => { if (e.payload === 'block') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); return 'ok' }`),
      { limits },
    )
    const e = await failure(sandbox.call(invoke('block')))
    expect(e.code).toBe('COORD_SANDBOX_TIMEOUT')
    expect(e.message).toBe('task probe@1.0.0: handler "handler" exceeded its wall time limit of 300 ms')
    expect(sandbox.disposed).toBe(false)
    expect(await sandbox.call(invoke('again'))).toBe('ok')
  })
})

describe('memory limit', () => {
  it('turns a memory bomb into MEMORY, disposes the isolate and rejects other pending calls', async () => {
    const limits = { memoryMb: 16, cpuMsPerCall: 10_000, wallMsPerCall: 20_000 }
    const { sandbox, host } = await sandboxFor(
      bundle(`const hoard = []
        exports.handler = async (e, ctx) => {
          if (e.payload === 'wait') return ctx.state.get('k')
          for (;;) hoard.push(new Array(1e5).fill({ x: hoard.length }))
        }`),
      { limits },
    )
    host.delayMs = 5000
    const waiting = failure(sandbox.call(invoke('wait')))
    const e = await failure(sandbox.call(invoke('bomb')))
    expect(e.code).toBe('COORD_SANDBOX_MEMORY')
    expect(e.message).toContain('16 MB')
    expect(sandbox.disposed).toBe(true)
    expect((await waiting).code).toBe('COORD_SANDBOX_MEMORY')
    expect((await failure(sandbox.call(invoke('again')))).code).toBe('COORD_SANDBOX_MEMORY')
    expect(sandbox.metrics().calls).toBe(2)
  })

  it('refuses ArrayBuffers beyond the limit with a RangeError the task sees, keeping the isolate', async () => {
    const limits = { memoryMb: 16, cpuMsPerCall: 10_000, wallMsPerCall: 20_000 }
    const { sandbox } = await sandboxFor(
      bundle(`let hoard = []; exports.handler = (e) => { if (e.payload) { hoard = []; return 'freed' } for (;;) hoard.push(new Uint8Array(4 << 20).fill(1)) }`),
      { limits },
    )
    const e = await failure(sandbox.call(invoke(false)))
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.taskError?.name).toBe('RangeError')
    expect(sandbox.disposed).toBe(false)
    expect(await sandbox.call(invoke(true))).toBe('freed')
  })
})
