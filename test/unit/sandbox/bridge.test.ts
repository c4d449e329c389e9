import { describe, expect, it } from 'vitest'
import { cborOp, serveRequest } from '../../../coordinator/sandbox/bridge.js'
import { PERMISSION_DENIED } from '../../../coordinator/sandbox/index.js'
import { HostTimers, MIN_INTERVAL_MS } from '../../../coordinator/sandbox/timers.js'
import { RecordingHost } from './recording-host.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('serveRequest', () => {
  it('knows only the HostApi requests, not inherited names, and never calls the host for them', async () => {
    const host = new RecordingHost()
    for (const method of ['constructor', '__proto__', 'toString', 'log', 'hasOwnProperty', 42]) {
      expect(await serveRequest(host, method, [])).toMatchObject({ ok: false, error: { code: 'COORD_INVALID_ARG' } })
    }
    expect(await serveRequest(host, 'kvGet', 'not-an-array')).toMatchObject({ ok: false, error: { code: 'COORD_INVALID_ARG' } })
    expect(host.calls).toEqual([])
  })

  it('checks argument types before the host sees them', async () => {
    const host = new RecordingHost()
    const refused = [
      ['updateShadow', ['lamp', [1, 2]]],
      ['updateShadow', ['lamp', new Uint8Array(1)]],
      ['getShadow', ['lamp', 7]],
      ['kvSet', [{}, 1]],
      ['invoke', [null, 1]],
      ['kvList', [undefined]],
    ] as const
    for (const [method, args] of refused) expect((await serveRequest(host, method, args)).ok).toBe(false)
    expect(host.calls).toEqual([])
  })

  it('passes a host error on as message and code only', async () => {
    const host = new RecordingHost()
    host.refuse.add('kvGet')
    const settled = await serveRequest(host, 'kvGet', ['secret'])
    expect(settled).toEqual({ ok: false, error: { message: 'task may not kvGet "secret"', code: PERMISSION_DENIED } })
  })
})

describe('cborOp', () => {
  it('refuses unknown operations and non-byte input as values, not throws', () => {
    expect(cborOp('eval', 1)).toMatchObject({ ok: false, code: 'COORD_INVALID_ARG' })
    expect(cborOp('decode', 'a string')).toMatchObject({ ok: false, message: 'cbor.decode takes a Uint8Array' })
  })
})

describe('HostTimers', () => {
  it('caps live timers and refuses reused or malformed ids', () => {
    const timers = new HostTimers(2, () => undefined)
    expect(timers.set(1, 60_000, false)).toBe(true)
    expect(timers.set(1, 60_000, false)).toBe(false)
    expect(timers.set('2', 60_000, false)).toBe(false)
    expect(timers.set(2, 60_000, true)).toBe(true)
    expect(timers.set(3, 60_000, false)).toBe(false)
    expect(timers.clear(1)).toBe(true)
    expect(timers.set(3, 60_000, false)).toBe(true)
    timers.clearAll()
    expect(timers.size).toBe(0)
  })

  it('treats a delay beyond 2^31-1 ms as the maximum, where Node would fire at once', async () => {
    const fired: number[] = []
    const timers = new HostTimers(4, (id) => fired.push(id))
    timers.set(1, 2 ** 40, false)
    await sleep(30)
    expect(fired).toEqual([])
    timers.clearAll()
  })

  it('spaces intervals at least MIN_INTERVAL_MS apart and drops ticks while a firing is unfinished', async () => {
    const fired: number[] = []
    const timers = new HostTimers(4, (id) => fired.push(id))
    timers.set(1, 0, true)
    await sleep(MIN_INTERVAL_MS * 5)
    // Never marked finished (no fired(1)), so only the first tick got through.
    expect(fired).toEqual([1])
    timers.fired(1)
    await sleep(MIN_INTERVAL_MS * 3)
    expect(fired.length).toBe(2)
    timers.clearAll()
  })
})
