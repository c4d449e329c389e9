import { decode, encode } from 'cbor-x'
import { describe, expect, it } from 'vitest'
import { PERMISSION_DENIED, type TaskEvent } from '../../../coordinator/sandbox/index.js'
import { bundle, eventually, sandboxFor } from './recording-host.js'

const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })

/** A sandbox whose handler runs `body` with (event, ctx) and returns its value. */
const running = (body: string) => sandboxFor(bundle(`exports.handler = async (event, ctx) => { ${body} }`))

describe('ctx.publish', () => {
  it('sends strings and Uint8Arrays as they are, other values as JSON text, with qos 0 unless asked', async () => {
    const { sandbox, host } = await running(`
      await ctx.publish('t/str', 'hello')
      await ctx.publish('t/bytes', new Uint8Array([1, 2, 255]), { qos: 1 })
      await ctx.publish('t/obj', { on: true, level: 3 })
      await ctx.publish('t/view', new Uint16Array([1, 2]).subarray(1))
      return 'sent'`)
    expect(await sandbox.call(invoke(null))).toBe('sent')
    expect(host.calls).toEqual([
      { method: 'publish', args: ['t/str', 'hello', 0] },
      { method: 'publish', args: ['t/bytes', new Uint8Array([1, 2, 255]), 1] },
      { method: 'publish', args: ['t/obj', '{"on":true,"level":3}', 0] },
      { method: 'publish', args: ['t/view', new Uint8Array([2, 0]), 0] },
    ])
    expect(host.calls[1]?.args[1]).toBeInstanceOf(Uint8Array)
  })

  it('rejects bad arguments inside the task with COORD_INVALID_ARG, before reaching the host', async () => {
    const { sandbox, host } = await running(`
      const codes = []
      for (const attempt of [() => ctx.publish(42, 'x'), () => ctx.publish('t', 'x', { qos: 2 }), () => ctx.publish('t', undefined)]) {
        try { await attempt() } catch (e) { codes.push(e.code ?? e.name) }
      }
      return codes`)
    expect(await sandbox.call(invoke(null))).toEqual(['COORD_INVALID_ARG', 'COORD_INVALID_ARG', 'TypeError'])
    expect(host.calls).toEqual([])
  })
})

describe('ctx.shadow, devices, state, invoke', () => {
  it('maps each method onto the HostApi and resolves with copies of its answers', async () => {
    const { sandbox, host } = await running(`
      const got = await ctx.shadow.get('lamp-1')
      const named = await ctx.shadow.get('lamp-1', { name: 'config' })
      const updated = await ctx.shadow.update('lamp-1', { state: { desired: { on: false } } }, { name: 'config' })
      const deleted = await ctx.shadow.delete('lamp-1')
      const devices = await ctx.devices()
      await ctx.state.set('a/1', { n: 1, bytes: new Uint8Array([9]) })
      await ctx.state.set('b', 2)
      const value = await ctx.state.get('a/1')
      const all = await ctx.state.list()
      const some = await ctx.state.list('a/')
      const removed = await ctx.state.delete('b')
      const answer = await ctx.invoke('other', { ask: 1 })
      return { got, named: named.status, updated, deleted, devices, value, isBytes: value.bytes instanceof Uint8Array, all, some, removed, answer }`)
    expect(await sandbox.call(invoke(null))).toEqual({
      got: { status: 200, body: { state: { reported: { on: true } }, version: 3 } },
      named: 200,
      updated: { status: 200, body: { state: { desired: { on: false } }, version: 4 } },
      deleted: { status: 404, body: { code: 404, message: 'No shadow exists with name: lamp-1' } },
      devices: [{ name: 'lamp-1', attributes: { room: 'kitchen' } }],
      value: { n: 1, bytes: new Uint8Array([9]) },
      isBytes: true,
      all: ['a/1', 'b'],
      some: ['a/1'],
      removed: true,
      answer: { from: 'other', echo: { ask: 1 } },
    })
    expect(host.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['getShadow', 'lamp-1', undefined],
      ['getShadow', 'lamp-1', 'config'],
      ['updateShadow', 'lamp-1', { state: { desired: { on: false } } }, 'config'],
      ['deleteShadow', 'lamp-1', undefined],
      ['listDevices'],
      ['kvSet', 'a/1', { n: 1, bytes: new Uint8Array([9]) }],
      ['kvSet', 'b', 2],
      ['kvGet', 'a/1'],
      ['kvList', ''],
      ['kvList', 'a/'],
      ['kvDelete', 'b'],
      ['invoke', 'other', { ask: 1 }],
    ])
  })

  it('passes copies both ways: later changes on either side do not show on the other', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`let kept; exports.handler = async (event, ctx) => {
        if (event.payload === 'set') { kept = { n: 1 }; await ctx.state.set('k', kept); kept.n = 2; return 'set' }
        const read = await ctx.state.get('k'); read.n = 99; return (await ctx.state.get('k')).n
      }`),
    )
    await sandbox.call(invoke('set'))
    expect(host.kv.get('k')).toEqual({ n: 1 })
    expect(await sandbox.call(invoke('get'))).toBe(1)
  })

  it('surfaces a host permission refusal as a catchable isolate Error with code and message, no host stack', async () => {
    const { sandbox, host } = await running(`
      try { await ctx.publish('forbidden/topic', 'x') } catch (e) {
        return { code: e.code, message: e.message, isError: e instanceof Error, plainCtor: e.constructor === Error, stack: e.stack }
      }`)
    host.refuse.add('publish')
    const seen = (await sandbox.call(invoke(null))) as { code: string; message: string; isError: boolean; plainCtor: boolean; stack: string }
    expect(seen).toMatchObject({ code: PERMISSION_DENIED, message: 'task may not publish "forbidden/topic"', isError: true, plainCtor: true })
    expect(seen.stack).not.toContain('recording-host')
    expect(seen.stack).not.toContain('file://')
  })

  it('fails the call with THREW carrying the code when the task lets a refusal escape', async () => {
    const { sandbox, host } = await running(`await ctx.state.set('k', 1)`)
    host.refuse.add('kvSet')
    const e = (await sandbox.call(invoke(null)).catch((err: unknown) => err)) as { code: string; taskError: { code: string } }
    expect(e.code).toBe('COORD_SANDBOX_THREW')
    expect(e.taskError.code).toBe(PERMISSION_DENIED)
  })

  it('rejects values the host cannot receive with the clone error, inside the task', async () => {
    const { sandbox, host } = await running(`try { await ctx.state.set('k', { f() {} }) } catch (e) { return e.name + ': ' + e.message }`)
    expect(await sandbox.call(invoke(null))).toMatch(/^TypeError: .*could not be cloned/)
    expect(host.calls).toEqual([])
  })
})

describe('ctx.log and console', () => {
  it('forwards levels, messages and JSON-safe fields to host.log, synchronously from the task’s view', async () => {
    const { sandbox, host } = await running(`
      ctx.log.debug('d')
      ctx.log.info('i', { n: 1, nested: { ok: true } })
      ctx.log.warn('w', { f() {} })
      ctx.log.error(new Error('boom').message)
      console.log('console', 1, { a: [1] })
      console.warn('careful')
      console.error(new Error('bad'))
      return 'logged'`)
    expect(await sandbox.call(invoke(null))).toBe('logged')
    await eventually(() => expect(host.logs).toHaveLength(7))
    expect(host.logs.slice(0, 6)).toEqual([
      { level: 'debug', message: 'd' },
      { level: 'info', message: 'i', fields: { n: 1, nested: { ok: true } } },
      { level: 'warn', message: 'w', fields: {} },
      { level: 'error', message: 'boom' },
      { level: 'info', message: 'console 1 {"a":[1]}' },
      { level: 'warn', message: 'careful' },
    ])
    expect(host.logs[6]?.level).toBe('error')
    expect(host.logs[6]?.message).toMatch(/^Error: bad\n\s+at /)
  })
})

describe('ctx.cbor', () => {
  it('encodes standard CBOR bytes and decodes them back, synchronously', async () => {
    const { sandbox } = await running(`
      const bytes = ctx.cbor.encode({ t: 21.5, raw: new Uint8Array([1, 2]), list: [1, 'a'] })
      const back = ctx.cbor.decode(bytes)
      return { bytes, isBytes: bytes instanceof Uint8Array, ownBuffer: bytes.buffer.byteLength === bytes.byteLength, back }`)
    const out = (await sandbox.call(invoke(null))) as { bytes: Uint8Array; isBytes: boolean; ownBuffer: boolean; back: unknown }
    expect(out.isBytes).toBe(true)
    expect(out.ownBuffer).toBe(true)
    expect(decode(out.bytes)).toEqual({ t: 21.5, raw: new Uint8Array([1, 2]), list: [1, 'a'] })
    expect(out.back).toEqual({ t: 21.5, raw: new Uint8Array([1, 2]), list: [1, 'a'] })
  })

  it('decodes what a device sends and throws a catchable error on garbage', async () => {
    const { sandbox } = await sandboxFor(
      bundle(`exports.handler = (event, ctx) => { const value = ctx.cbor.decode(event.payload); let bad; try { ctx.cbor.decode(new Uint8Array([0x1c])) } catch (e) { bad = e instanceof Error } return { value, bad } }`),
    )
    const payload = encode({ temp: 20, id: 'sensor-1' })
    expect(await sandbox.call({ type: 'mqtt', topic: 't', payload })).toEqual({ value: { temp: 20, id: 'sensor-1' }, bad: true })
  })
})
