import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { systemClock } from '../../../coordinator/core/clock.js'
import type { MessageHandler } from '../../../coordinator/broker/index.js'
import type { JsonObject, TaskTrigger } from '../../../coordinator/protocol/index.js'
import type { TaskEvent } from '../../../coordinator/sandbox/index.js'
import type { ShadowChange, ShadowChangeListener } from '../../../coordinator/shadow/index.js'
import { DeviceStore, openDatabase, type Db } from '../../../coordinator/store/index.js'
import { TaskGrants } from '../../../coordinator/tasks/permissions.js'
import { bindTriggers, mqttEvent, type TriggerBinding } from '../../../coordinator/tasks/triggers.js'

class FakeBus {
  readonly handlers = new Map<string, MessageHandler>()
  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.handlers.set(filter, handler)
    return async () => void this.handlers.delete(filter)
  }
  deliver(filter: string, topic: string, payload: string | Buffer): void {
    this.handlers.get(filter)?.(topic, Buffer.from(payload))
  }
}

class FakeShadows {
  readonly listeners = new Set<ShadowChangeListener>()
  onChange(listener: ShadowChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  emit(change: ShadowChange): void {
    for (const l of this.listeners) l(change)
  }
}

const update = (thingName: string, delta: JsonObject | null, shadowName?: string): ShadowChange => ({
  kind: 'update',
  ref: shadowName === undefined ? { thingName } : { thingName, shadowName },
  document: { state: {}, metadata: {}, version: 7 },
  delta,
})

type Grant = string | { attributes: Record<string, string> }

describe('bindTriggers', () => {
  let db: Db
  let bus: FakeBus
  let shadows: FakeShadows
  let events: TaskEvent[]
  let binding: TriggerBinding | undefined
  let bind: (triggers: TaskTrigger[], deviceGrants?: Grant[]) => Promise<TriggerBinding>

  beforeEach(() => {
    db = openDatabase(':memory:')
    const devices = new DeviceStore(db)
    devices.add({ name: 'lamp-1', attributes: { room: 'kitchen' }, policies: [], certFingerprint: null, tokenHash: null, createdAt: 0 })
    bus = new FakeBus()
    shadows = new FakeShadows()
    events = []
    bind = (triggers, deviceGrants = ['lamp-1', 'lamp-9', { attributes: { room: 'kitchen' } }]) => bindTriggers({
      triggers, bus, shadows, devices, clock: systemClock,
      grants: new TaskGrants('t', { publish: [], subscribe: ['#'], devices: deviceGrants, invoke: [] }),
      dispatch: (e) => events.push(e),
    }).then((b) => (binding = b))
  })
  afterEach(async () => {
    await binding?.close()
    vi.useRealTimers()
    db.close()
  })

  it('delivers nothing until the binding is opened', async () => {
    const b = await bind([{ type: 'mqtt', filter: 'in/#' }])
    bus.deliver('in/#', 'in/a', '1')
    expect(events).toEqual([])
    b.open()
    bus.deliver('in/#', 'in/a', '2')
    expect(events).toHaveLength(1)
  })

  it('turns MQTT messages into events with bytes and parsed JSON', async () => {
    const b = await bind([{ type: 'mqtt', filter: 'in/#' }])
    b.open()
    bus.deliver('in/#', 'in/a', '{"t":21}')
    bus.deliver('in/#', 'in/b', 'not json')
    expect(events[0]).toEqual({ type: 'mqtt', topic: 'in/a', payload: new Uint8Array(Buffer.from('{"t":21}')), json: { t: 21 } })
    expect(events[1]).toEqual({ type: 'mqtt', topic: 'in/b', payload: new Uint8Array(Buffer.from('not json')) })
  })

  it('unsubscribes and stops delivering once closed', async () => {
    const b = await bind([{ type: 'mqtt', filter: 'in/#' }, { type: 'shadow-delta', devices: ['lamp-1'] }])
    b.open()
    await b.close()
    expect(bus.handlers.size).toBe(0)
    expect(shadows.listeners.size).toBe(0)
  })

  it('fires shadow-delta events for updates with a delta on selected devices of the chosen shadow', async () => {
    const b = await bind([{ type: 'shadow-delta', devices: [{ attributes: { room: 'kitchen' } }, 'lamp-9'] }, { type: 'shadow-delta', devices: ['lamp-1'], shadowName: 'cfg' }])
    b.open()
    shadows.emit(update('lamp-1', { on: true }))
    shadows.emit(update('lamp-1', null))
    shadows.emit({ kind: 'delete', ref: { thingName: 'lamp-1' }, version: 3 })
    shadows.emit(update('lamp-2', { on: true }))
    shadows.emit(update('lamp-9', { on: false }))
    shadows.emit(update('lamp-1', { mode: 2 }, 'cfg'))
    shadows.emit(update('lamp-1', { mode: 3 }, 'other'))
    expect(events).toEqual([
      { type: 'shadow-delta', thingName: 'lamp-1', delta: { on: true }, version: 7 },
      { type: 'shadow-delta', thingName: 'lamp-9', delta: { on: false }, version: 7 },
      { type: 'shadow-delta', thingName: 'lamp-1', shadowName: 'cfg', delta: { mode: 2 }, version: 7 },
    ])
  })

  it('fires shadow-delta events only for devices the grants still cover', async () => {
    const b = await bind([{ type: 'shadow-delta', devices: ['lamp-1'] }], ['lamp-9'])
    b.open()
    shadows.emit(update('lamp-1', { on: true }))
    expect(events).toEqual([])
  })

  it('fires `every` schedules at their period', async () => {
    vi.useFakeTimers()
    const b = await bind([{ type: 'schedule', every: '5s' }])
    b.open()
    vi.advanceTimersByTime(15_000)
    expect(events).toHaveLength(3)
    expect(events[0]).toMatchObject({ type: 'schedule', schedule: '5s', firedAt: expect.any(Number) })
    await b.close()
    vi.advanceTimersByTime(15_000)
    expect(events).toHaveLength(3)
  })

  it('fires cron schedules', async () => {
    vi.useFakeTimers({ now: new Date('2025-01-01T00:00:00.500Z') })
    const b = await bind([{ type: 'schedule', cron: '*/10 * * * * *' }])
    b.open()
    await vi.advanceTimersByTimeAsync(30_000)
    expect(events.map((e) => e.type === 'schedule' && e.schedule)).toEqual(['*/10 * * * * *', '*/10 * * * * *', '*/10 * * * * *'])
  })

  it('binds nothing for invoke triggers', async () => {
    const b = await bind([{ type: 'invoke' }])
    b.open()
    expect(bus.handlers.size + shadows.listeners.size).toBe(0)
  })
})

describe('mqttEvent', () => {
  it('copies the payload so the broker may reuse its buffer', () => {
    const buffer = Buffer.from('[1]')
    const event = mqttEvent('t', buffer)
    buffer[0] = 0
    expect(event).toMatchObject({ payload: new Uint8Array(Buffer.from('[1]')), json: [1] })
  })
})
