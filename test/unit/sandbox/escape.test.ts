import { describe, expect, it } from 'vitest'
import type { TaskEvent } from '../../../coordinator/sandbox/index.js'
import { bundle, sandboxFor } from './recording-host.js'

const invoke = (payload: unknown): TaskEvent => ({ type: 'invoke', payload })

/** Runs `body` inside a handler and returns what it returns. */
async function inTask(body: string): Promise<unknown> {
  const { sandbox } = await sandboxFor(bundle(`exports.handler = async (event, ctx) => { ${body} }`))
  return sandbox.call(invoke(null))
}

describe('the isolate offers no way out', () => {
  it('has no Node globals', async () => {
    expect(
      await inTask(`return [typeof process, typeof require, typeof module, typeof global, typeof Buffer, typeof fetch, typeof importScripts]`),
    ).toEqual(['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined'])
  })

  it('finds only the isolate’s own realm through constructors', async () => {
    expect(
      await inTask(`
        const probes = {
          viaGlobal: () => globalThis.constructor.constructor('return typeof process')(),
          viaCtx: () => ctx.publish.constructor('return typeof process')(), // an AsyncFunction
          viaLog: () => ctx.log.info.constructor.constructor('return typeof require')(),
          viaTimer: () => setTimeout.constructor('return typeof process')(),
          viaConsole: () => console.log.constructor('return typeof module')(),
          viaCbor: () => ctx.cbor.encode.constructor('return typeof process')(),
          realm: () => String(ctx.publish.constructor.constructor === Function),
          getProcess: () => { try { return typeof globalThis.constructor.constructor('return process')() } catch (e) { return e.name } },
        }
        const out = {}
        for (const [name, probe] of Object.entries(probes)) out[name] = await probe()
        return out`),
    ).toEqual({
      viaGlobal: 'undefined',
      viaCtx: 'undefined',
      viaLog: 'undefined',
      viaTimer: 'undefined',
      viaConsole: 'undefined',
      viaCbor: 'undefined',
      realm: 'true',
      getProcess: 'ReferenceError',
    })
  })

  it('errors from the host are isolate Errors whose constructors lead nowhere', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (event, ctx) => {
        try { await ctx.invoke('other', 1) } catch (e) {
          return [e.constructor === Error, Object.getPrototypeOf(e) === Error.prototype, e.constructor.constructor('return typeof process')()]
        }
      }`),
    )
    host.refuse.add('invoke')
    expect(await sandbox.call(invoke(null))).toEqual([true, true, 'undefined'])
  })

  it('leaves no bridge on the global object, only what the runtime promised', async () => {
    const names = (await inTask(`return Object.getOwnPropertyNames(globalThis)`)) as string[]
    const added = names.filter((n) => !/^[A-Z]/.test(n) && !['globalThis', 'undefined', 'NaN', 'Infinity'].includes(n))
    expect(added.sort()).toEqual(
      [
        '__edgeTask',
        'clearInterval',
        'clearTimeout',
        'console',
        'decodeURI',
        'decodeURIComponent',
        'encodeURI',
        'encodeURIComponent',
        'escape',
        'eval',
        'isFinite',
        'isNaN',
        'parseFloat',
        'parseInt',
        'setInterval',
        'setTimeout',
        'unescape',
      ].sort(),
    )
    expect(names.filter((n) => n.startsWith('$') || /ivm|host|bridge/i.test(n))).toEqual([])
  })

  it('exposes ctx methods as plain isolate functions, not isolated-vm handles', async () => {
    expect(
      await inTask(`
        const fns = [ctx.publish, ctx.state.get, ctx.log.info, ctx.cbor.encode, ctx.devices, setTimeout, console.log]
        return fns.every((f) => typeof f === 'function' && Object.getOwnPropertyNames(f).every((k) => ['length', 'name'].includes(k)))`),
    ).toBe(true)
  })

  it('patched built-ins neither break ctx nor capture the raw bridge', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (event, ctx) => {
        const seen = []
        const rapply = Reflect.apply
        const spy = (original) => function (...args) { for (const a of [this, ...args]) if (typeof a === 'function') seen.push(a.name + '/' + a.length); return rapply(original, this, args) }
        Function.prototype.apply = spy(Function.prototype.apply)
        Function.prototype.call = spy(Function.prototype.call)
        Promise.prototype.then = spy(Promise.prototype.then)
        JSON.stringify = () => 'tampered'
        globalThis.Promise = function Fake() { throw new Error('fake promise') }
        Object.freeze = (o) => o
        await ctx.publish('t', { real: 'json' })
        await ctx.state.get('k')
        ctx.log.info('still fine', { a: 1 })
        return seen
      }`),
    )
    // Only V8's anonymous promise-resolving functions (length 1) pass through the patched then;
    // bridge callbacks would show as "ivm.Callback…".
    const seen = (await sandbox.call(invoke(null))) as string[]
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.filter((f) => f !== '/1')).toEqual([])
    expect(host.calls[0]).toEqual({ method: 'publish', args: ['t', '{"real":"json"}', 0] })
    expect(host.logs).toEqual([{ level: 'info', message: 'still fine', fields: { a: 1 } }])
  })

  it('cannot reach another task’s data through a shared Buffer pool', async () => {
    const { sandbox, host } = await sandboxFor(
      bundle(`exports.handler = async (event, ctx) => { const v = await ctx.state.get('blob'); return [v.byteLength, v.buffer.byteLength] }`),
    )
    Buffer.from('another task’s token')
    host.kv.set('blob', Buffer.from('mine'))
    expect(await sandbox.call(invoke(null))).toEqual([4, 4])
  })
})
