import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Clock } from '../../../coordinator/core/clock.js'
import { silentLogger } from '../../../coordinator/core/log.js'
import { openDatabase, type Db } from '../../../coordinator/store/index.js'
import { Registry, type RegistryEvents } from '../../../cloud-shim/registry/index.js'
import { tempDir } from '../../helpers/tmp.js'

type Membership = { group: string; added: string[]; removed: string[] }

const clock: Clock = { now: () => 1_700_000_000_000 }

describe('registry and groups', () => {
  const tmp = tempDir('edge-cloud-registry-')
  const dbs: Db[] = []

  function open(): Registry {
    const db = openDatabase(join(tmp.dir, 'cloud.db'))
    dbs.push(db)
    return new Registry({ db, clock, log: silentLogger() })
  }

  function record(registry: Registry): Membership[] {
    const events: Membership[] = []
    registry.on('groupMembershipChanged', (group, added, removed) => events.push({ group, added, removed }))
    return events
  }

  afterEach(() => {
    for (const db of dbs.splice(0)) db.close()
    tmp.remove()
  })

  it("should keep a coordinator's reports in their own section, through operator edits and a reopen", () => {
    const registry = open()
    registry.createThing({ name: 'hub-1', kind: 'coordinator', attributes: { site: 'north' }, tags: ['gpio'] })
    registry.createGroup('big', { kind: 'dynamic', query: 'reported.attributes.memoryMb >= 1024' })
    const reported = registry.reportThing('hub-1', { attributes: { memoryMb: '2048', site: 'south' }, addTags: ['camera'] })
    expect(reported).toMatchObject({ attributes: { site: 'north' }, tags: ['gpio'], reported: { attributes: { memoryMb: '2048', site: 'south' }, tags: ['camera'] } })
    expect(registry.membersOf('big')).toEqual(['hub-1'])
    // An operator replacing the thing replaces its own fields only.
    registry.putThing({ name: 'hub-1', kind: 'coordinator', attributes: { site: 'east' } })
    registry.patchThing('hub-1', { addTags: ['managed'] })
    expect(open().getThing('hub-1')).toMatchObject({ attributes: { site: 'east' }, tags: ['managed'], reported: { attributes: { memoryMb: '2048' }, tags: ['camera'] } })
    registry.reportThing('hub-1', { attributes: { memoryMb: null } })
    expect(registry.membersOf('big')).toEqual([])
  })

  it('should move things in and out of a dynamic group as their attributes and tags change, with an event each time', () => {
    const registry = open()
    registry.createThing({ name: 'hub-1', kind: 'coordinator', attributes: { site: 'north', memoryMb: '2048' }, tags: ['gpio'] })
    registry.createThing({ name: 'hub-2', kind: 'coordinator', attributes: { site: 'south', memoryMb: '256' } })
    const events = record(registry)
    registry.createGroup('north-gpio', { kind: 'dynamic', query: 'attributes.site = "north" AND tags HAS gpio AND attributes.memoryMb >= 512' })
    expect(registry.membersOf('north-gpio')).toEqual(['hub-1'])
    registry.patchThing('hub-2', { attributes: { site: 'north', memoryMb: '1024' }, addTags: ['gpio'] })
    registry.patchThing('hub-1', { removeTags: ['gpio'] })
    expect(registry.membersOf('north-gpio')).toEqual(['hub-2'])
    expect(events).toEqual([
      { group: 'north-gpio', added: ['hub-1'], removed: [] },
      { group: 'north-gpio', added: ['hub-2'], removed: [] },
      { group: 'north-gpio', added: [], removed: ['hub-1'] },
    ])
  })

  it('should announce nothing when a change leaves a thing as it was', () => {
    const registry = open()
    registry.createThing({ name: 'hub-1', kind: 'coordinator', attributes: { site: 'north' } })
    const changed: string[] = []
    registry.on('thingChanged', (t) => changed.push(t.name))
    const before = registry.getThing('hub-1')
    expect(registry.patchThing('hub-1', { attributes: { site: 'north' } })).toEqual(before)
    expect(changed).toEqual([])
  })

  it('should keep static members as given, drop removed things from every group, and announce group removal', () => {
    const registry = open()
    for (const name of ['a', 'b', 'c']) registry.createThing({ name, kind: 'coordinator' })
    registry.createGroup('pilot', { kind: 'static', members: ['a', 'b'] })
    registry.createGroup('all', { kind: 'dynamic', query: 'kind = coordinator' })
    const events = record(registry)
    registry.removeThing('a')
    expect(registry.membersOf('pilot')).toEqual(['b'])
    expect(registry.membersOf('all')).toEqual(['b', 'c'])
    registry.removeGroup('pilot')
    expect(events).toEqual([
      { group: 'all', added: [], removed: ['a'] },
      { group: 'pilot', added: [], removed: ['a'] },
      { group: 'pilot', added: [], removed: ['b'] },
    ])
    expect(() => registry.createGroup('bad', { kind: 'static', members: ['nobody'] })).toThrow(/unknown: "nobody"/)
  })

  it('should let a device belong to one existing coordinator, and keep a coordinator with devices', () => {
    const registry = open()
    registry.createThing({ name: 'hub-1', kind: 'coordinator' })
    registry.createThing({ name: 'lamp-1', kind: 'device', coordinator: 'hub-1' })
    expect(() => registry.createThing({ name: 'lamp-2', kind: 'device', coordinator: 'nope' })).toThrow(/no coordinator named "nope"/)
    expect(() => registry.createThing({ name: 'hub-1', kind: 'coordinator' })).toThrow(/already exists/)
    expect(() => registry.removeThing('hub-1')).toThrow(/still serves 1 device/)
    expect(() => registry.putThing({ name: 'x', kind: 'coordinator', coordinator: 'hub-1' })).toThrow(/cannot itself belong/)
    registry.patchThing('lamp-1', { coordinator: null })
    expect(registry.removeThing('hub-1').name).toBe('hub-1')
  })

  it('should refuse malformed names, attributes and tags with the offending value in the message', () => {
    const registry = open()
    expect(() => registry.createThing({ name: 'has space', kind: 'device' })).toThrow(/thing name "has space" is invalid/)
    expect(() => registry.createThing({ name: 'd', kind: 'device', attributes: { 'bad key': 'v' } })).toThrow(/attribute key "bad key"/)
    registry.createThing({ name: 'd', kind: 'device' })
    expect(() => registry.patchThing('d', { attributes: JSON.parse('{"__proto__":"x"}') as Record<string, string> })).toThrow(/attribute key "__proto__"/)
    expect(() => registry.createThing({ name: 'e', kind: 'device', tags: ['no spaces'] })).toThrow(/tag "no spaces"/)
    expect(() => registry.createGroup('g', { kind: 'dynamic', query: 'tags HAS' })).toThrow(/position 8/)
  })

  it('should pick up changes another process committed, as events, when it catches up', () => {
    const daemon = open()
    daemon.createGroup('north', { kind: 'dynamic', query: 'attributes.site = north' })
    const events = record(daemon)
    const changed: Parameters<RegistryEvents['thingChanged']>[0][] = []
    daemon.on('thingChanged', (t) => changed.push(t))
    const cli = open()
    cli.createThing({ name: 'hub-9', kind: 'coordinator', attributes: { site: 'north' } })
    daemon.catchUp()
    expect(changed.map((t) => t.name)).toEqual(['hub-9'])
    expect(events).toEqual([{ group: 'north', added: ['hub-9'], removed: [] }])
    expect(daemon.membersOf('north')).toEqual(['hub-9'])
    cli.removeThing('hub-9')
    expect(daemon.getThing('hub-9')).toBeUndefined()
    expect(events.at(-1)).toEqual({ group: 'north', added: [], removed: ['hub-9'] })
  })

  it('should keep its state across a reopen', () => {
    const first = open()
    first.createThing({ name: 'hub-1', kind: 'coordinator', tags: ['camera', 'gpio', 'camera'] })
    first.createGroup('cams', { kind: 'dynamic', query: 'tags HAS camera' })
    const again = open()
    expect(again.getThing('hub-1')?.tags).toEqual(['camera', 'gpio'])
    expect(again.membersOf('cams')).toEqual(['hub-1'])
    expect(again.groupsOf('hub-1')).toEqual(['cams'])
  })
})
