import { describe, expect, it, vi } from 'vitest'
import { systemClock } from '../../../coordinator/core/clock.js'
import { silentLogger } from '../../../coordinator/core/log.js'
import type { TaskEvent } from '../../../coordinator/sandbox/index.js'
import { CallSlots } from '../../../coordinator/tasks/call-slots.js'
import { HOST_LIMIT_DEFAULTS } from '../../../coordinator/tasks/limits.js'
import { TaskLog } from '../../../coordinator/tasks/logs.js'
import { TaskRunner, newCounters, type RunnerOptions, type SandboxHandle } from '../../../coordinator/tasks/runner.js'
import { eventually } from '../../helpers/tasks.js'

type Behaviour = (event: TaskEvent, sandbox: FakeSandbox) => Promise<unknown>

const coded = (code: string, message = code): Error => Object.assign(new Error(message), { code })

class FakeSandbox implements SandboxHandle {
  disposed = false
  calls = 0
  constructor(readonly behave: Behaviour) {}
  call(event: TaskEvent): Promise<unknown> {
    if (this.disposed) return Promise.reject(coded('COORD_SANDBOX_DISPOSED'))
    this.calls++
    return this.behave(event, this)
  }
  metrics(): { heapUsedBytes: number; cpuTimeMs: number; calls: number } {
    return { heapUsedBytes: 4096, cpuTimeMs: this.calls * 2, calls: this.calls }
  }
  dispose(): void {
    this.disposed = true
  }
}

const ok: Behaviour = async (event) => (event.type === 'invoke' ? event.payload : null)
const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

function options(behave: Behaviour | Behaviour[], more: Partial<RunnerOptions> = {}): RunnerOptions & { sandboxes: FakeSandbox[] } {
  const sandboxes: FakeSandbox[] = []
  const behaviours = Array.isArray(behave) ? behave : [behave]
  return {
    sandboxes,
    task: 't', version: '1.0.0', limits: { maxConcurrent: 1, queueSize: 10 }, priority: 1,
    slots: new CallSlots(4, 4), counters: newCounters(),
    restart: { initialBackoffMs: 10, maxBackoffMs: 100, brokenAfter: 4, windowMs: 60_000 },
    clock: systemClock, log: new TaskLog('t', silentLogger(), systemClock, HOST_LIMIT_DEFAULTS), onBroken: vi.fn(),
    createSandbox: async () => {
      const s = new FakeSandbox(behaviours[Math.min(sandboxes.length, behaviours.length - 1)] ?? ok)
      sandboxes.push(s)
      return s
    },
    ...more,
  }
}

const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'no code')

describe('TaskRunner queueing', () => {
  it('accepts maxConcurrent + queueSize calls and refuses the rest, counting them', async () => {
    const gate = deferred()
    const o = options(async () => gate.promise, { limits: { maxConcurrent: 2, queueSize: 3 } })
    const runner = await TaskRunner.create(o)
    const calls = Array.from({ length: 7 }, (_, i) => codeOf(runner.call(invoke(i))))
    await new Promise((r) => setTimeout(r, 10))
    expect(runner.queueDepth).toBe(3)
    gate.resolve()
    expect(await Promise.all(calls)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'COORD_TASK_QUEUE_FULL', 'COORD_TASK_QUEUE_FULL'])
    expect(o.counters).toMatchObject({ calls: 5, rejected: 2 })
    expect(runner.queueDepth).toBe(0)
  })

  it('never runs more than maxConcurrent calls of the task at once', async () => {
    let running = 0
    let peak = 0
    const o = options(async () => {
      peak = Math.max(peak, ++running)
      await new Promise((r) => setTimeout(r, 5))
      running--
    }, { limits: { maxConcurrent: 3, queueSize: 100 } })
    const runner = await TaskRunner.create(o)
    await Promise.all(Array.from({ length: 20 }, (_, i) => runner.call(invoke(i))))
    expect(peak).toBe(3)
  })

  it('gives control calls the global slots before bulk calls queued earlier', async () => {
    const slots = new CallSlots(1, 1)
    const order: string[] = []
    const gate = deferred()
    const blocker = await TaskRunner.create(options(async () => gate.promise, { slots, task: 'blocker' }))
    const bulk = await TaskRunner.create(options(async () => void order.push('bulk'), { slots, priority: 0, task: 'bulk' }))
    const control = await TaskRunner.create(options(async () => void order.push('control'), { slots, priority: 2, task: 'control' }))
    const held = blocker.call(invoke(0))
    await new Promise((r) => setTimeout(r, 5))
    const queued = [bulk.call(invoke(1)), control.call(invoke(2))]
    await new Promise((r) => setTimeout(r, 5))
    gate.resolve()
    await Promise.all([held, ...queued])
    expect(order).toEqual(['control', 'bulk'])
  })

  it('runs a nested call (one task invoking another) without waiting for a global slot', async () => {
    const slots = new CallSlots(1, 1)
    const gate = deferred()
    const caller = await TaskRunner.create(options(async () => gate.promise, { slots, task: 'caller' }))
    const callee = await TaskRunner.create(options(ok, { slots, task: 'callee' }))
    const held = caller.call(invoke(0))
    await new Promise((r) => setTimeout(r, 5))
    await expect(callee.call(invoke('inner'), true)).resolves.toBe('inner')
    gate.resolve()
    await held
  })
})

describe('TaskRunner failures', () => {
  it('keeps serving from the same sandbox after a single failure', async () => {
    let first = true
    const o = options(async (e) => {
      if (first) {
        first = false
        throw coded('COORD_SANDBOX_THREW')
      }
      return ok(e, undefined as never)
    })
    const runner = await TaskRunner.create(o)
    expect(await codeOf(runner.call(invoke(1)))).toBe('COORD_SANDBOX_THREW')
    await expect(runner.call(invoke(2))).resolves.toBe(2)
    expect(o.sandboxes).toHaveLength(1)
    expect(o.counters).toMatchObject({ calls: 2, failures: 1 })
    expect(runner.lastError).toBe('COORD_SANDBOX_THREW: COORD_SANDBOX_THREW')
  })

  it('rebuilds a sandbox that disposed itself, after a pause, and folds its CPU time into the totals', async () => {
    const lost: Behaviour = async (_e, sandbox) => {
      sandbox.disposed = true
      throw coded('COORD_SANDBOX_MEMORY')
    }
    const o = options([lost, ok])
    const runner = await TaskRunner.create(o)
    expect(await codeOf(runner.call(invoke(1)))).toBe('COORD_SANDBOX_MEMORY')
    const started = Date.now()
    await expect(runner.call(invoke(2))).resolves.toBe(2)
    expect(Date.now() - started).toBeGreaterThanOrEqual(9)
    expect(o.sandboxes).toHaveLength(2)
    expect(o.counters.retiredCpuMs).toBe(2)
    expect(runner.sandboxMetrics()).toEqual({ cpuTimeMs: 2, heapUsedBytes: 4096 })
  })

  it('rebuilds after repeated failures even when the sandbox survived them', async () => {
    let failures = 2
    const o = options(async (e) => {
      if (failures-- > 0) throw coded('COORD_SANDBOX_TIMEOUT')
      return ok(e, undefined as never)
    })
    const runner = await TaskRunner.create(o)
    await codeOf(runner.call(invoke(1)))
    await codeOf(runner.call(invoke(2)))
    await expect(runner.call(invoke(3))).resolves.toBe(3)
    expect(o.sandboxes).toHaveLength(2)
    expect(o.counters).toMatchObject({ failures: 2, timeouts: 2 })
  })

  it('counts a sandbox that fails to rebuild as a failure and tries again after the next pause', async () => {
    let builds = 0
    const lose: Behaviour = async (_e, sandbox) => {
      sandbox.disposed = true
      throw coded('COORD_SANDBOX_MEMORY')
    }
    const o = options(lose)
    o.createSandbox = async () => {
      builds++
      if (builds === 2) throw coded('COORD_SANDBOX_LOAD')
      const s = new FakeSandbox(builds === 1 ? lose : ok)
      o.sandboxes.push(s)
      return s
    }
    const runner = await TaskRunner.create(o)
    expect(await codeOf(runner.call(invoke(1)))).toBe('COORD_SANDBOX_MEMORY')
    expect(await codeOf(runner.call(invoke(2)))).toBe('COORD_SANDBOX_LOAD')
    await expect(runner.call(invoke(3))).resolves.toBe(3)
    expect(builds).toBe(3)
    expect(o.counters.failures).toBe(2)
  })

  it('marks itself broken after brokenAfter failures in a row and refuses queued and new calls', async () => {
    const o = options(async () => {
      throw coded('COORD_SANDBOX_THREW', 'nope')
    }, { limits: { maxConcurrent: 1, queueSize: 20 } })
    const runner = await TaskRunner.create(o)
    const codes = await Promise.all(Array.from({ length: 8 }, (_, i) => codeOf(runner.call(invoke(i)))))
    expect(codes).toEqual([...Array<string>(4).fill('COORD_SANDBOX_THREW'), ...Array<string>(4).fill('COORD_TASK_BROKEN')])
    expect(runner.state).toBe('broken')
    expect(o.onBroken).toHaveBeenCalledTimes(1)
    expect(o.sandboxes.every((s) => s.disposed)).toBe(true)
    expect(await codeOf(runner.call(invoke(9)))).toBe('COORD_TASK_BROKEN')
    expect(o.counters.failures).toBe(4)
  })

  it('counts faults outside any call (a spinning timer) toward the streak and marks itself broken', async () => {
    const o = options(ok)
    let fault: ((error: Error) => void) | undefined
    o.createSandbox = async (onFault) => {
      fault = onFault
      const s = new FakeSandbox(ok)
      o.sandboxes.push(s)
      return s
    }
    const runner = await TaskRunner.create(o)
    for (let i = 0; i < 4; i++) fault?.(coded('COORD_SANDBOX_TIMEOUT', 'task t@1.0.0: a timer callback exceeded its CPU time limit of 100 ms'))
    expect(runner.state).toBe('broken')
    expect(o.onBroken).toHaveBeenCalledTimes(1)
    expect(o.sandboxes[0]?.disposed).toBe(true)
    expect(o.counters).toMatchObject({ calls: 0, failures: 4, timeouts: 4 })
    expect(runner.lastError).toContain('a timer callback exceeded its CPU time limit')
    expect(await codeOf(runner.call(invoke(1)))).toBe('COORD_TASK_BROKEN')
  })

  it('ignores faults of a sandbox it no longer uses', async () => {
    const faults: Array<(error: Error) => void> = []
    const lost: Behaviour = async (_e, sandbox) => {
      sandbox.disposed = true
      throw coded('COORD_SANDBOX_MEMORY')
    }
    const o = options([lost, ok])
    const create = o.createSandbox
    o.createSandbox = async (onFault) => {
      faults.push(onFault)
      return create(onFault)
    }
    const runner = await TaskRunner.create(o)
    await codeOf(runner.call(invoke(1)))
    await expect(runner.call(invoke(2))).resolves.toBe(2)
    for (let i = 0; i < 10; i++) faults[0]?.(coded('COORD_SANDBOX_TIMEOUT'))
    expect(runner.state).toBe('running')
    expect(o.counters.failures).toBe(1)
  })

  it('pauses without holding a global slot, so other tasks keep running', async () => {
    const slots = new CallSlots(1, 1)
    let failures = 2
    const flaky = await TaskRunner.create(options(async (e) => {
      if (failures-- > 0) throw coded('COORD_SANDBOX_THREW')
      return ok(e, undefined as never)
    }, { slots, task: 'flaky', restart: { initialBackoffMs: 300, maxBackoffMs: 300, brokenAfter: 5, windowMs: 60_000 } }))
    const other = await TaskRunner.create(options(ok, { slots, task: 'other' }))
    await codeOf(flaky.call(invoke(1)))
    await codeOf(flaky.call(invoke(2)))
    const waiting = flaky.call(invoke(3))
    const started = Date.now()
    await expect(other.call(invoke('other'))).resolves.toBe('other')
    expect(Date.now() - started).toBeLessThan(150)
    await expect(waiting).resolves.toBe(3)
  })
})

describe('TaskRunner shutdown', () => {
  it('drains accepted calls, then refuses queued ones after dispose with ClosedError', async () => {
    const gate = deferred()
    const runner = await TaskRunner.create(options(async () => gate.promise))
    const first = codeOf(runner.call(invoke(1)))
    const second = codeOf(runner.call(invoke(2)))
    expect(await runner.drain(20)).toBe(false)
    await runner.dispose()
    gate.resolve()
    expect(await first).toBe('ok')
    expect(await second).toBe('COORD_CLOSED')
    expect(await runner.drain(20)).toBe(true)
    expect(await codeOf(runner.call(invoke(3)))).toBe('COORD_CLOSED')
  })
})

describe('TaskRunner keepAlive (long-lived tasks)', () => {
  it('rebuilds a sandbox lost outside any call once its pause ends, with no call to trigger it', async () => {
    const sandboxes: FakeSandbox[] = []
    const faults: Array<(error: Error) => void> = []
    const o = options(ok, {
      keepAlive: true,
      createSandbox: async (onFault) => {
        const s = new FakeSandbox(ok)
        sandboxes.push(s)
        faults.push(onFault)
        return s
      },
    })
    const runner = await TaskRunner.create(o)
    // What the sandbox does when a timer callback is still spinning at its CPU limit.
    sandboxes[0]!.disposed = true
    faults[0]!(coded('COORD_SANDBOX_CPU_LIMIT', 'a timer callback exceeded its CPU time limit of 100 ms'))
    await eventually(() => sandboxes.length === 2, 5000, 'the eager rebuild')
    expect(o.counters).toMatchObject({ calls: 0, failures: 1, timeouts: 1 })
    expect(runner.state).toBe('running')
    expect(runner.lastError).toBe('COORD_SANDBOX_CPU_LIMIT: a timer callback exceeded its CPU time limit of 100 ms')
    await runner.dispose()
  })
})
