import { describe, expect, it } from 'vitest'
import { hasCode } from '../../../coordinator/core/errors.js'
import { SandboxError, TaskSandbox, type TaskEvent } from '../../../coordinator/sandbox/index.js'
import { LIMITS, RecordingHost, bundle, eventually, sandboxFor } from './recording-host.js'

const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })

const rejection = async (p: Promise<unknown>): Promise<SandboxError> => {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(SandboxError)
  return e as SandboxError
}

describe('TaskSandbox calls', () => {
  it('round-trips the event and the result as copies, Uint8Array staying Uint8Array', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = async (event, ctx) => ({
        type: event.type, topic: event.topic, bytes: Array.from(event.payload), isBytes: event.payload instanceof Uint8Array,
        json: event.json, out: new Uint8Array([7, 8]), nested: { list: [1, 'two', null], when: new Date(0) },
      })`),
    )
    const result = await sandbox.call({ type: 'mqtt', topic: 'things/a/temp', payload: new Uint8Array([1, 2, 3]), json: { t: 21.5 } })
    expect(result).toEqual({
      type: 'mqtt',
      topic: 'things/a/temp',
      bytes: [1, 2, 3],
      isBytes: true,
      json: { t: 21.5 },
      out: new Uint8Array([7, 8]),
      nested: { list: [1, 'two', null], when: new Date(0) },
    })
  })

  it('resolves undefined and primitive results, and sync handlers too', async () => {
    const { sandbox } = await sandboxFor(bundle(`exports.handler = (event) => event.payload`))
    expect(await sandbox.call(invoke(undefined))).toBeUndefined()
    expect(await sandbox.call(invoke(42))).toBe(42)
    expect(await sandbox.call(invoke('x'))).toBe('x')
  })

  it('calls the handler with exports as `this`, reading esbuild-style getter exports', async () => {
    const { sandbox } = await sandboxFor(
      `var __edgeTask = (() => { const exports = {}; const handler = function () { return typeof this.helper }; ` +
        `Object.defineProperty(exports, 'handler', { get: () => handler, enumerable: true }); exports.helper = () => 1; return exports })()`,
    )
    expect(await sandbox.call(invoke(null))).toBe('function')
  })

  it('keeps module state across calls in one isolate and interleaves concurrent async calls', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`let count = 0; exports.handler = async (event, ctx) => { const mine = ++count; await ctx.state.get('k'); return [event.payload, mine] }`),
    )
    host.delayMs = 50
    const started = Date.now()
    const results = await Promise.all([1, 2, 3, 4].map((n) => sandbox.call(invoke(n))))
    expect(results).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
    ])
    // Four 50 ms host waits overlapped rather than ran back to back.
    expect(Date.now() - started).toBeLessThan(180)
  })

  it('never hands a task bytes beyond its view (pooled Buffers carry other data)', async () => {
    const { sandbox } = await sandboxFor(bundle(`exports.handler = (event) => [event.payload.byteLength, event.payload.buffer.byteLength]`))
    Buffer.from('SECRET-OF-ANOTHER-TASK')
    const pooled = Buffer.from('hi')
    expect(pooled.buffer.byteLength).toBeGreaterThan(2)
    expect(await sandbox.call({ type: 'mqtt', topic: 't', payload: pooled })).toEqual([2, 2])
  })

  it('copies shared, cyclic and typed structure into the isolate, every view on bytes of its own, no shared memory', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = ({ payload: p }) => [
        p.self === p, p.map.get('k').byteLength, p.map.get('k').buffer.byteLength, p.floats instanceof Float32Array,
        Array.from(p.floats), p.floats.buffer.byteLength, p.same[0] === p.same[1], Array.from(p.set)[0].byteLength,
        p.shared instanceof ArrayBuffer,
      ]`),
    )
    const cyclic: Record<string, unknown> = {}
    const slice = Buffer.from('0123456789').subarray(2, 5)
    Object.assign(cyclic, { self: cyclic, map: new Map([['k', slice]]), floats: new Float32Array([1, 2, 3]).subarray(1), same: [slice, slice], set: new Set([slice]), shared: new SharedArrayBuffer(8) })
    expect(await sandbox.call(invoke(cyclic))).toEqual([true, 3, 3, true, [2, 3], 8, true, 3, true])
  })

  it('gives ctx.task and a deep-frozen copy of config', async () => {
    const config = { threshold: 30, rooms: ['a'] }
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = (e, ctx) => {
        let refused = false; try { ctx.config.rooms.push('b') } catch { refused = true }
        return { task: ctx.task, config: ctx.config, refused, frozen: Object.isFrozen(ctx) && Object.isFrozen(ctx.state) }
      }`),
      { config },
    )
    expect(await sandbox.call(invoke(null))).toEqual({ task: { name: 'probe', version: '1.0.0' }, config, refused: true, frozen: true })
    expect(config.rooms).toEqual(['a'])
  })

  it('rejects COORD_SANDBOX_RESULT when the result cannot be copied out, and keeps serving', async () => {
    const { sandbox } = await sandboxFor(bundle(`exports.handler = (e) => e.payload ? { f() {} } : 'fine'`))
    const e = await rejection(sandbox.call(invoke(true)))
    expect(e.code).toBe('COORD_SANDBOX_RESULT')
    expect(e.message).toContain('could not be cloned')
    expect(await sandbox.call(invoke(false))).toBe('fine')
  })
})

describe('TaskSandbox handler errors', () => {
  it('rejects COORD_SANDBOX_THREW with the task message, name, code and a stack of task frames', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`function check(v) { const e = new TypeError('bad reading ' + v); e.code = 'E_READING'; throw e }
        exports.handler = async (event) => { await null; check(event.payload) }`),
    )
    const e = await rejection(sandbox.call(invoke(-1)))
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.message).toBe('task probe@1.0.0: handler "handler" threw TypeError: bad reading -1')
    expect(e.taskError).toMatchObject({ name: 'TypeError', message: 'bad reading -1', code: 'E_READING' })
    expect(e.taskError?.stack).toContain('at check (task:///probe@1.0.0.js')
    expect(e.taskError?.stack).not.toContain('edge-sandbox')
    expect(e.toJSON()).toMatchObject({ code: 'COORD_SANDBOX_THREW', taskError: { message: 'bad reading -1' } })
  })

  it('describes thrown non-errors', async () => {
    const { sandbox } = await sandboxFor(bundle(`exports.handler = () => { throw 'plain string' }`))
    const e = await rejection(sandbox.call(invoke(null)))
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.taskError?.message).toBe('plain string')
  })

  it('turns unbounded recursion into a THREW RangeError and stays usable', async () => {
    const { sandbox } = await sandboxFor(bundle(`const down = (n) => down(n + 1) + 1; exports.handler = (e) => e.payload ? down(0) : 'ok'`))
    const e = await rejection(sandbox.call(invoke(true)))
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.taskError?.name).toBe('RangeError')
    expect(e.taskError?.message).toContain('call stack')
    expect(await sandbox.call(invoke(false))).toBe('ok')
  })
})

describe('TaskSandbox loading', () => {
  it('refuses a bundle without the handler export, naming it and the exports found', async () => {
    const e = await rejection(sandboxFor(bundle(`exports.onMessage = () => 1; exports.version = 2`), { handler: 'handler' }))
    expect(e.code).toBe('COORD_SANDBOX_LOAD')
    expect(e.message).toContain('no exported function "handler"')
    expect(e.message).toContain('exports: onMessage, version')
  })

  it('refuses an export that is not a function', async () => {
    const e = await rejection(sandboxFor(bundle(`exports.handler = 'nope'`)))
    expect(e.code).toBe('COORD_SANDBOX_LOAD')
  })

  it('refuses code that does not set __edgeTask', async () => {
    const e = await rejection(sandboxFor(`const exports = {}`))
    expect(e.code).toBe('COORD_SANDBOX_LOAD')
    expect(e.message).toContain('__edgeTask')
  })

  it('refuses a syntax error', async () => {
    const e = await rejection(sandboxFor(`var __edgeTask = (() => {`))
    expect(e.code).toBe('COORD_SANDBOX_LOAD')
    expect(e.message).toContain('does not compile')
  })

  it('refuses top-level code that throws, with its message', async () => {
    const e = await rejection(sandboxFor(bundle(`throw new Error('no config')`)))
    expect(e.code).toBe('COORD_SANDBOX_LOAD')
    expect(e.message).toContain('no config')
  })

  it('runs start(ctx) for long-lived tasks only, before the first call', async () => {
    const code = bundle(`let started = 'no'; exports.start = async (ctx) => { await ctx.state.set('boot', 1); started = 'yes' }; exports.handler = () => started`)
    const longLived = await sandboxFor(code, { mode: 'long-lived' })
    expect(await longLived.sandbox.call(invoke(null))).toBe('yes')
    expect(longLived.host.calls).toEqual([{ method: 'kvSet', args: ['boot', 1] }])
    const onDemand = await sandboxFor(code, { mode: 'on-demand' })
    expect(await onDemand.sandbox.call(invoke(null))).toBe('no')
  })

  it('fails create with THREW when start() throws', async () => {
    const e = await rejection(sandboxFor(bundle(`exports.start = () => { throw new Error('no device') }; exports.handler = () => 1`), { mode: 'long-lived' }))
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.message).toContain('start() threw Error: no device')
  })

  it('keeps setInterval from start() firing until dispose', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`let ticks = 0; exports.start = (ctx) => { setInterval(() => { ticks++; ctx.log.info('tick ' + ticks) }, 15) }; exports.handler = () => ticks`),
      { mode: 'long-lived' },
    )
    await eventually(() => expect(host.logs.length).toBeGreaterThanOrEqual(3))
    expect(await sandbox.call(invoke(null))).toBeGreaterThanOrEqual(3)
    sandbox.dispose()
    const after = host.logs.length
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(host.logs.length).toBe(after)
  })
})

describe('TaskSandbox timers', () => {
  it('fires setTimeout with arguments after an on-demand call returns, and clearTimeout cancels', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = (e, ctx) => {
        const cancelled = setTimeout(() => ctx.log.warn('should not run'), 5)
        clearTimeout(cancelled)
        setTimeout((a, b) => ctx.log.info('later', { a, b }), 5, 1, 'two')
        return typeof cancelled
      }`),
    )
    expect(await sandbox.call(invoke(null))).toBe('number')
    await eventually(() => expect(host.logs).toEqual([{ level: 'info', message: 'later', fields: { a: 1, b: 'two' } }]))
  })

  it('caps live timers with a catchable error', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = () => { const ids = []; try { for (;;) ids.push(setTimeout(() => {}, 60000)) } catch (e) { ids.forEach(clearTimeout); return [ids.length, e.code, e.message] } }`),
    )
    const [count, code, message] = (await sandbox.call(invoke(null))) as [number, string, string]
    expect(count).toBe(64)
    expect(code).toBe('COORD_SANDBOX_TIMER_LIMIT')
    expect(message).toContain('too many live timers')
    // The cleared timers free their slots.
    expect(((await sandbox.call(invoke(null))) as unknown[])[0]).toBe(64)
  })

  it('logs a timer callback that throws on the task log, and keeps the interval', async () => {
    const { host } = await sandboxFor(bundle(`let n = 0; setInterval(() => { n++; throw new Error('tick ' + n) }, 10); exports.handler = () => n`))
    await eventually(() => expect(host.logs.length).toBeGreaterThanOrEqual(2))
    expect(host.logs[0]).toMatchObject({ level: 'error', message: 'timer callback failed: Error: tick 1' })
  })
})

describe('TaskSandbox lifecycle', () => {
  it('moves metrics with calls', async () => {
    const { sandbox } = await sandboxFor(bundle(`const kept = []; exports.handler = () => { for (let i = 0; i < 2e5; i++) kept.push(i) ; return kept.length }`))
    const before = sandbox.metrics()
    expect(before.calls).toBe(0)
    expect(before.heapUsedBytes).toBeGreaterThan(0)
    await sandbox.call(invoke(null))
    const after = sandbox.metrics()
    expect(after.calls).toBe(1)
    expect(after.cpuTimeMs).toBeGreaterThan(before.cpuTimeMs)
    expect(after.heapUsedBytes).toBeGreaterThan(before.heapUsedBytes)
  })

  it('dispose rejects pending calls with COORD_SANDBOX_DISPOSED, is idempotent, and refuses later calls', async () => {
    const { sandbox, host } = await sandboxFor(bundle(`exports.handler = async (e, ctx) => ctx.state.get('k')`))
    host.delayMs = 1000
    const pending = sandbox.call(invoke(null))
    await eventually(() => expect(host.calls.length).toBe(1))
    sandbox.dispose()
    sandbox.dispose()
    expect(sandbox.disposed).toBe(true)
    expect((await rejection(pending)).code).toBe('COORD_SANDBOX_DISPOSED')
    expect((await rejection(sandbox.call(invoke(null)))).code).toBe('COORD_SANDBOX_DISPOSED')
    expect(sandbox.metrics().cpuTimeMs).toBeGreaterThan(0)
  })

  it('reports an event that cannot be copied as the caller’s error', async () => {
    const { sandbox } = await sandboxFor(bundle(`exports.handler = () => 1`))
    const e: unknown = await sandbox.call(invoke(() => 1)).catch((err: unknown) => err)
    expect(hasCode(e, 'COORD_INVALID_ARG')).toBe(true)
  })

  it('creates independent isolates: one task’s globals are invisible to another', async () => {
    const host = new RecordingHost()
    const a = await sandboxFor(bundle(`globalThis.shared = 'a'; exports.handler = () => globalThis.shared`), { host })
    const b = await sandboxFor(bundle(`exports.handler = () => typeof globalThis.shared`), { host })
    expect(await a.sandbox.call(invoke(null))).toBe('a')
    expect(await b.sandbox.call(invoke(null))).toBe('undefined')
    expect(TaskSandbox.create).toBeTypeOf('function')
    expect(LIMITS.cpuMsPerCall).toBe(200)
  })
})
