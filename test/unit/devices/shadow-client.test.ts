import { afterEach, describe, expect, it, vi } from 'vitest'
import { DeviceClosedError, ShadowClient, ShadowRejectedError, ShadowTimeoutError, type DeltaDocument, type ShadowChange } from '../../../devices/sdk/index.js'
import { shadowReplyFilters, type ShadowTransport } from '../../../devices/sdk/shadow-client.js'

/** Records what the client subscribes and publishes; replies are injected by the test. */
function fakeTransport(opts: { subscribe?: () => Promise<void> } = {}) {
  let n = 0
  const published: Array<{ topic: string; body: Record<string, unknown> }> = []
  const subscribed: string[][] = []
  const listenerErrors: unknown[] = []
  const transport: ShadowTransport = {
    thingName: 'lamp-1',
    requestTimeoutMs: 1000,
    subscribe: async (filters) => {
      subscribed.push(filters)
      await opts.subscribe?.()
    },
    publish: async (topic, payload) => void published.push({ topic, body: JSON.parse(payload) as Record<string, unknown> }),
    newClientToken: () => `me-${++n}`,
    isOwnClientToken: (t) => t.startsWith('me-'),
    reportListenerError: (err) => void listenerErrors.push(err),
  }
  return { transport, published, subscribed, listenerErrors }
}

const json = (body: unknown): Buffer => Buffer.from(JSON.stringify(body))
const flush = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('ShadowClient', () => {
  afterEach(() => void vi.useRealTimers())

  it('should subscribe once to the seven reply topics of its shadow', () => {
    const t = fakeTransport()
    const named = new ShadowClient(t.transport, 'config')
    expect(t.subscribed).toEqual([shadowReplyFilters({ thingName: 'lamp-1', shadowName: 'config' })])
    expect(t.subscribed[0]).toHaveLength(7)
    expect(t.subscribed[0]).toContain('$aws/things/lamp-1/shadow/name/config/update/delta')
    expect(named.shadowName).toBe('config')
    expect(new ShadowClient(t.transport, '').shadowName).toBeUndefined()
  })

  it('should send a fresh clientToken per request and resolve with the reply carrying it', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const first = shadow.update({ state: { reported: { on: true } } })
    const second = shadow.get()
    await flush()
    expect(t.published.map((p) => [p.topic, p.body.clientToken])).toEqual([
      ['$aws/things/lamp-1/shadow/update', 'me-1'],
      ['$aws/things/lamp-1/shadow/get', 'me-2'],
    ])
    // Replies arrive in the other order; correlation is by token, not arrival.
    shadow.handleReply('get', 'accepted', json({ state: {}, metadata: {}, version: 4, timestamp: 1, clientToken: 'me-2' }))
    shadow.handleReply('update', 'accepted', json({ state: { reported: { on: true } }, version: 3, timestamp: 1, clientToken: 'me-1' }))
    expect(await second).toMatchObject({ version: 4 })
    expect(await first).toMatchObject({ version: 3 })
    expect(shadow.version).toBe(4)
  })

  it("should reject with AWS's code and message on a rejected reply", async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const p = shadow.update({ state: { reported: { x: 1 } }, version: 1 })
    await flush()
    expect(t.published[0]?.body).toEqual({ state: { reported: { x: 1 } }, version: 1, clientToken: 'me-1' })
    shadow.handleReply('update', 'rejected', json({ code: 409, message: 'Version conflict', clientToken: 'me-1' }))
    const err: unknown = await p.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShadowRejectedError)
    expect(err).toMatchObject({ code: 409, message: 'Version conflict', operation: 'update' })
    expect(shadow.stats()).toMatchObject({ rejected: 1, updates: 0 })
  })

  it('should time out without a matching reply, ignoring replies to other tokens and operations', async () => {
    vi.useFakeTimers()
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const p = shadow.delete()
    const caught = p.catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(0)
    shadow.handleReply('delete', 'accepted', json({ version: 2, timestamp: 1, clientToken: 'someone' }))
    shadow.handleReply('get', 'accepted', json({ version: 2, timestamp: 1, clientToken: 'me-1' }))
    await vi.advanceTimersByTimeAsync(1000)
    expect(await caught).toBeInstanceOf(ShadowTimeoutError)
    expect(shadow.stats().timedOut).toBe(1)
  })

  it('should not publish before the reply subscription is acknowledged', async () => {
    let ack!: () => void
    const t = fakeTransport({ subscribe: () => new Promise<void>((r) => (ack = r)) })
    const shadow = new ShadowClient(t.transport)
    void shadow.get()
    await flush()
    expect(t.published).toHaveLength(0)
    ack()
    await flush()
    expect(t.published).toHaveLength(1)
  })

  it('should reject every request when the subscription was refused', async () => {
    const t = fakeTransport({ subscribe: () => Promise.reject(new Error('refused')) })
    await expect(new ShadowClient(t.transport).get()).rejects.toThrow('refused')
  })

  it('should keep the newest delta that arrived before any listener and hand it to the first one', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    shadow.handleReply('update', 'delta', json({ state: { on: true }, metadata: {}, version: 2, timestamp: 1 }))
    shadow.handleReply('update', 'delta', json({ state: { on: true, level: 3 }, metadata: {}, version: 3, timestamp: 1 }))
    const got: DeltaDocument[] = []
    shadow.onDelta((d) => void got.push(d))
    await flush()
    expect(got.map((d) => d.version)).toEqual([3])
  })

  it('should report foreign updates and deletes to onChange, and not replies to its own requests', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const changes: ShadowChange[] = []
    shadow.onChange((c) => void changes.push(c))
    shadow.handleReply('update', 'accepted', json({ state: {}, version: 5, timestamp: 1, clientToken: 'me-99' }))
    shadow.handleReply('update', 'accepted', json({ state: { desired: { a: 1 } }, version: 6, timestamp: 1 }))
    shadow.handleReply('get', 'accepted', json({ state: {}, version: 6, timestamp: 1, clientToken: 'other' }))
    shadow.handleReply('delete', 'accepted', json({ version: 6, timestamp: 1, clientToken: 'other' }))
    await flush()
    expect(changes.map((c) => [c.operation, c.document.version])).toEqual([['update', 6], ['delete', 6]])
  })

  it('should route a throwing or rejecting listener to reportListenerError and keep dispatching', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const got: number[] = []
    shadow.onDelta(() => {
      throw new Error('sync boom')
    })
    shadow.onDelta(async () => Promise.reject(new Error('async boom')))
    shadow.onDelta((d) => void got.push(d.version))
    shadow.handleReply('update', 'delta', json({ state: { a: 1 }, metadata: {}, version: 1, timestamp: 1 }))
    await flush()
    expect(got).toEqual([1])
    expect(t.listenerErrors.map((e) => (e as Error).message).sort()).toEqual(['async boom', 'sync boom'])
  })

  it('should stop calling a listener after it unsubscribes, and ignore malformed payloads', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const got: number[] = []
    const off = shadow.onDelta((d) => void got.push(d.version))
    shadow.handleReply('update', 'delta', Buffer.from('not json'))
    shadow.handleReply('update', 'delta', json({ state: { a: 1 }, version: 'x' }))
    off()
    shadow.handleReply('update', 'delta', json({ state: { a: 1 }, metadata: {}, version: 1, timestamp: 1 }))
    await flush()
    expect(got).toEqual([])
  })

  it('should reject pending requests when the device closes', async () => {
    const t = fakeTransport()
    const shadow = new ShadowClient(t.transport)
    const p = shadow.get()
    shadow.failPending(new DeviceClosedError())
    await expect(p).rejects.toBeInstanceOf(DeviceClosedError)
  })
})
