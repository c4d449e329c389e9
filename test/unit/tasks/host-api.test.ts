import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { systemClock } from '../../../coordinator/core/clock.js'
import { silentLogger } from '../../../coordinator/core/log.js'
import type { ShadowRef } from '../../../coordinator/protocol/index.js'
import type { HostApi } from '../../../coordinator/sandbox/index.js'
import { DeviceStore, openDatabase, type Db } from '../../../coordinator/store/index.js'
import { MAX_PUBLISH_BYTES, buildHostApi } from '../../../coordinator/tasks/host-api.js'
import { TaskBudget } from '../../../coordinator/tasks/host-budget.js'
import { HOST_LIMIT_DEFAULTS } from '../../../coordinator/tasks/limits.js'
import { TaskLog } from '../../../coordinator/tasks/logs.js'
import { TaskGrants } from '../../../coordinator/tasks/permissions.js'
import { TaskStore } from '../../../coordinator/tasks/task-store.js'

describe('buildHostApi', () => {
  let db: Db
  let host: HostApi
  let log: TaskLog
  const published: Array<[string, Buffer, number]> = []
  const shadowCalls: Array<[string, ShadowRef, string]> = []
  const invoke = vi.fn(async (target: string, payload: unknown) => ({ target, payload }))

  beforeEach(() => {
    db = openDatabase(':memory:')
    log = new TaskLog('t', silentLogger(), systemClock, HOST_LIMIT_DEFAULTS)
    published.length = 0
    shadowCalls.length = 0
    const answer = (op: string) => async (ref: ShadowRef, payload?: Uint8Array) => {
      shadowCalls.push([op, ref, Buffer.from(payload ?? new Uint8Array()).toString()])
      return { accepted: true, status: 200, body: { op } }
    }
    host = buildHostApi({
      task: 't', version: '1.0.0', log, invoke, store: new TaskStore(db), devices: new DeviceStore(db),
      grants: new TaskGrants('t', { publish: ['out/#'], subscribe: [], devices: ['lamp-1'], invoke: ['helper'] }),
      bus: { publish: async (topic, payload, qos) => void published.push([topic, Buffer.from(payload), qos ?? 0]) },
      shadows: { get: answer('get'), update: answer('update'), delete: answer('delete') },
      budget: new TaskBudget('t', HOST_LIMIT_DEFAULTS, systemClock), onLimit: () => {},
    })
  })
  afterEach(() => db.close())

  it('publishes granted topics as bytes with the asked QoS', async () => {
    await host.publish('out/a', 'hi', 1)
    await host.publish('out/b', new Uint8Array([1, 2]), 0)
    expect(published).toEqual([['out/a', Buffer.from('hi'), 1], ['out/b', Buffer.from([1, 2]), 0]])
  })

  it('refuses a topic outside the grants with PERMISSION_DENIED naming action and target, and logs it', async () => {
    await expect(host.publish('elsewhere', 'x', 0)).rejects.toMatchObject({
      code: 'COORD_TASK_PERMISSION_DENIED',
      message: expect.stringMatching(/^task "t" may not publish to "elsewhere": /),
    })
    expect(published).toEqual([])
    expect(log.tail(1)[0]).toMatchObject({ source: 'lifecycle', level: 'warn', msg: 'permission denied', fields: { action: 'publish to', target: 'elsewhere' } })
  })

  it('refuses payloads above MAX_PUBLISH_BYTES', async () => {
    await expect(host.publish('out/a', new Uint8Array(MAX_PUBLISH_BYTES + 1), 0)).rejects.toMatchObject({ code: 'COORD_TASK_PAYLOAD_TOO_LARGE' })
    await host.publish('out/a', new Uint8Array(MAX_PUBLISH_BYTES), 0)
    expect(published).toHaveLength(1)
  })

  it('sends shadow requests for granted devices as JSON and answers status and body', async () => {
    await expect(host.updateShadow('lamp-1', { state: { desired: { on: true } } }, 'cfg')).resolves.toEqual({ status: 200, body: { op: 'update' } })
    await host.getShadow('lamp-1')
    await host.deleteShadow('lamp-1')
    expect(shadowCalls).toEqual([
      ['update', { thingName: 'lamp-1', shadowName: 'cfg' }, '{"state":{"desired":{"on":true}}}'],
      ['get', { thingName: 'lamp-1' }, ''],
      ['delete', { thingName: 'lamp-1' }, ''],
    ])
  })

  it('refuses shadow requests for devices not granted', async () => {
    await expect(host.updateShadow('lamp-2', { state: {} })).rejects.toMatchObject({ code: 'COORD_TASK_PERMISSION_DENIED', message: expect.stringContaining('may not update the shadow of "lamp-2"') })
    await expect(host.getShadow('lamp-2')).rejects.toMatchObject({ code: 'COORD_TASK_PERMISSION_DENIED' })
    expect(shadowCalls).toEqual([])
  })

  it('invokes only granted tasks', async () => {
    await expect(host.invoke('helper', 1)).resolves.toEqual({ target: 'helper', payload: 1 })
    await expect(host.invoke('other', 1)).rejects.toMatchObject({ code: 'COORD_TASK_PERMISSION_DENIED', message: expect.stringContaining('may not invoke "other"') })
    expect(invoke).toHaveBeenCalledTimes(1)
  })

  it('keeps state in the task\'s own namespace', async () => {
    await host.kvSet('k', { v: 1 })
    await expect(host.kvGet('k')).resolves.toEqual({ v: 1 })
    await expect(host.kvList('')).resolves.toEqual(['k'])
    expect(new TaskStore(db).kvGet('other', 'k')).toBeUndefined()
    await expect(host.kvDelete('k')).resolves.toBe(true)
  })

  it('lists the devices it may manage and writes task log lines', async () => {
    await expect(host.listDevices()).resolves.toEqual([{ name: 'lamp-1', attributes: {} }])
    host.log('info', 'hello', { a: 1 })
    expect(log.tail(1)[0]).toMatchObject({ source: 'task', msg: 'hello', fields: { a: 1 } })
  })
})
