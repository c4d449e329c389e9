import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DeviceStore, openDatabase, type Db } from '../../../coordinator/store/index.js'
import { TaskGrants, deviceSelected, selectDevices } from '../../../coordinator/tasks/permissions.js'

const device = (name: string, attributes: Record<string, string>) => ({ name, attributes, policies: [], certFingerprint: null, tokenHash: null, createdAt: 0 })

describe('TaskGrants', () => {
  let db: Db
  let devices: DeviceStore
  beforeAll(() => {
    db = openDatabase(':memory:')
    devices = new DeviceStore(db)
    devices.add(device('lamp-1', { room: 'kitchen', kind: 'lamp' }))
    devices.add(device('lamp-2', { room: 'hall', kind: 'lamp' }))
    devices.add(device('fan-1', { room: 'kitchen', kind: 'fan' }))
  })
  afterAll(() => db.close())

  const grants = new TaskGrants('relay', {
    publish: ['out/${thingName}/#', '$aws/things/+/shadow/#', 'cmd/+'],
    subscribe: ['in/#'],
    devices: ['lamp-1', 'ghost', { attributes: { room: 'kitchen', kind: 'fan' } }],
    invoke: ['helper', 'relay'],
  })

  it('allows publishing under granted filters, with ${thingName} as the task name', () => {
    expect(grants.publish('out/relay/x')).toEqual({ allowed: true })
    expect(grants.publish('cmd/lamp')).toEqual({ allowed: true })
    expect(grants.publish('out/other/x')).toMatchObject({ allowed: false, reason: expect.stringContaining('no policy statement allows it') })
  })

  it('refuses shadow reply topics and reserved prefixes even when a filter covers them', () => {
    expect(grants.publish('$aws/things/lamp-1/shadow/update')).toEqual({ allowed: true })
    expect(grants.publish('$aws/things/lamp-1/shadow/update/delta')).toMatchObject({ allowed: false, reason: expect.stringContaining('published only by the coordinator') })
    const everything = new TaskGrants('x', { publish: ['#'], subscribe: [], devices: [], invoke: [] })
    expect(everything.publish('$coord/anything')).toMatchObject({ allowed: false, reason: expect.stringContaining('reserved') })
    expect(everything.publish('a/+/b')).toMatchObject({ allowed: false, reason: expect.stringContaining('not a valid MQTT topic name') })
  })

  it('allows subscribing only within a granted filter', () => {
    expect(grants.subscribe('in/a/#')).toEqual({ allowed: true })
    expect(grants.subscribe('#')).toMatchObject({ allowed: false })
  })

  it('grants devices by name (registered or not) and by every attribute of a selector', () => {
    expect(grants.device('lamp-1', devices)).toEqual({ allowed: true })
    expect(grants.device('ghost', devices)).toEqual({ allowed: true })
    expect(grants.device('fan-1', devices)).toEqual({ allowed: true })
    expect(grants.device('lamp-2', devices)).toMatchObject({ allowed: false, reason: 'the manifest grants no such device' })
    expect(grants.device('unknown', devices)).toMatchObject({ allowed: false })
  })

  it('allows invoking listed tasks but never itself', () => {
    expect(grants.invoke('helper')).toEqual({ allowed: true })
    expect(grants.invoke('other')).toMatchObject({ allowed: false })
    expect(grants.invoke('relay')).toMatchObject({ allowed: false, reason: 'a task cannot invoke itself' })
  })

  it('refuses a manifest whose publish resource is not a topic filter', () => {
    expect(() => new TaskGrants('x', { publish: ['a/#/b'], subscribe: [], devices: [], invoke: [] })).toThrow(expect.objectContaining({ code: 'COORD_TASK_MANIFEST_INVALID' }))
  })

  it('selects registered devices by attributes, plus named things not registered', () => {
    expect(deviceSelected([{ attributes: { kind: 'lamp' } }], 'lamp-2', devices)).toBe(true)
    expect(deviceSelected([{ attributes: { kind: 'lamp' } }], 'ghost', devices)).toBe(false)
    expect(selectDevices(['ghost', 'lamp-1', { attributes: { room: 'kitchen' } }], devices)).toEqual([
      { name: 'fan-1', attributes: { room: 'kitchen', kind: 'fan' } },
      { name: 'lamp-1', attributes: { room: 'kitchen', kind: 'lamp' } },
      { name: 'ghost', attributes: {} },
    ])
  })
})
