import { afterEach, describe, expect, it } from 'vitest'
import type { ShadowRef } from '../../../coordinator/protocol/index.js'
import type { ShadowService } from '../../../coordinator/shadow/index.js'
import type { LocalShadows } from '../../../coordinator/sync/index.js'
import { payload, syncHarness, type Harness } from '../../helpers/sync-harness.js'

const GW: ShadowRef = { thingName: 'gw-1' }

async function stateOf(service: ShadowService, ref: ShadowRef = GW): Promise<unknown> {
  const r = await service.get(ref)
  if (r.status === 404) return null
  const { desired, reported } = r.body['state'] as Record<string, unknown>
  return { ...(desired === undefined ? {} : { desired }), ...(reported === undefined ? {} : { reported }) }
}

async function eventually(check: () => Promise<unknown>, expected: unknown, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    last = await check()
    if (JSON.stringify(last) === JSON.stringify(expected)) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  expect(last).toEqual(expected)
}

describe('SyncService against an in-memory cloud', () => {
  let h: Harness | undefined
  afterEach(async () => {
    await h?.close()
    h = undefined
  })

  it('runs one step per shadow at a time; triggers arriving meanwhile fold into one more run', async () => {
    h = await syncHarness({ targets: [GW] })
    h.link.setState('connected')
    await h.sync.idle()
    const gets = h.outbox.count('/get')
    h.outbox.hold = true
    for (let i = 1; i <= 5; i++) await h.local.update(GW, payload({ state: { reported: { n: i } } }))
    expect(h.outbox.count('/get')).toBe(gets + 1)
    h.outbox.hold = false
    h.outbox.flush()
    await eventually(() => stateOf(h!.cloud), { reported: { n: 5 } })
    await h.sync.idle()
    expect(h.outbox.count('/get')).toBe(gets + 2)
  })

  it('does not echo: its own writes come back on both sides and start no further step', async () => {
    h = await syncHarness({ targets: [GW] })
    h.link.setState('connected')
    await h.sync.idle()
    const gets = h.outbox.count('/get')
    await h.cloud.update(GW, payload({ state: { desired: { on: true } } }))
    await eventually(() => stateOf(h!.local), { desired: { on: true } })
    await h.local.update(GW, payload({ state: { reported: { on: true } } }))
    await eventually(() => stateOf(h!.cloud), { desired: { on: true }, reported: { on: true } })
    await new Promise((resolve) => setTimeout(resolve, 50))
    await h.sync.idle()
    expect(h.outbox.count('/get')).toBe(gets + 2)
  })

  it('queues nothing while the link is down, and carries the change over at the reconnect', async () => {
    h = await syncHarness({ targets: [GW] })
    await h.local.update(GW, payload({ state: { reported: { offline: 1 } } }))
    await h.sync.idle()
    expect(h.outbox.queued).toEqual([])
    h.link.setState('connected')
    await eventually(() => stateOf(h!.cloud), { reported: { offline: 1 } })
  })

  it('fails a get in flight when the link drops, and syncs in full when it is back', async () => {
    h = await syncHarness({ targets: [GW] })
    h.link.setState('connected')
    await h.sync.idle()
    h.outbox.hold = true
    await h.cloud.update(GW, payload({ state: { desired: { v: 1 } } }))
    h.link.setState('disconnected')
    await h.sync.idle()
    expect(await stateOf(h.local)).toBeNull()
    h.outbox.hold = false
    h.link.setState('connected')
    await eventually(() => stateOf(h!.local), { desired: { v: 1 } })
  })

  it('runs again when a device changes the local shadow between its read and its write', async () => {
    let interfere = false
    const racing = (s: ShadowService): LocalShadows => ({
      get: async (ref, p) => {
        const r = await s.get(ref, p)
        if (interfere) {
          interfere = false
          await s.update(ref, payload({ state: { reported: { device: 'moved' } } }))
        }
        return r
      },
      update: (ref, p) => s.update(ref, p),
      delete: (ref, p) => s.delete(ref, p),
      onChange: (l) => s.onChange(l),
    })
    h = await syncHarness({ targets: [GW], local: racing })
    h.link.setState('connected')
    await h.local.update(GW, payload({ state: { reported: { device: 'start' } } }))
    await eventually(() => stateOf(h!.cloud), { reported: { device: 'start' } })
    interfere = true
    // Without the rerun the sync would write the cloud's value over the device's newer one.
    await h.cloud.update(GW, payload({ state: { reported: { device: 'cloud' } } }))
    const expected = { reported: { device: 'moved' } }
    await eventually(() => stateOf(h!.local), expected)
    await eventually(() => stateOf(h!.cloud), expected)
  })

  it('syncs named shadows independently of the classic one', async () => {
    const named: ShadowRef = { thingName: 'gw-1', shadowName: 'cfg' }
    h = await syncHarness({ targets: [GW, named] })
    h.link.setState('connected')
    await h.cloud.update(named, payload({ state: { desired: { a: 1 } } }))
    await eventually(() => stateOf(h!.local, named), { desired: { a: 1 } })
    expect(await stateOf(h.local)).toBeNull()
  })
})
