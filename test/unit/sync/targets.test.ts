import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../../coordinator/config/index.js'
import { syncedDevices, syncTargets } from '../../../coordinator/sync/index.js'

describe('cloud.sync configuration', () => {
  it("defaults to the coordinator's own classic shadow, both directions", () => {
    const { sync } = loadConfig().cloud
    expect(sync).toEqual({ shadows: [], own: true, direction: 'both' })
    expect(syncTargets(sync, 'gw-1')).toEqual([{ thingName: 'gw-1' }])
  })

  it('fills classic and named per entry', () => {
    const { sync } = loadConfig({ overrides: { cloud: { sync: { shadows: [{ thing: 'lamp-1' }, { thing: 'm', classic: false, named: ['a'] }] } } } }).cloud
    expect(sync.shadows).toEqual([{ thing: 'lamp-1', classic: true, named: [] }, { thing: 'm', classic: false, named: ['a'] }])
  })

  it('names the key of every bad value', () => {
    const bad = (sync: unknown): (() => unknown) => () => loadConfig({ overrides: { cloud: { sync } } })
    expect(bad({ direction: 'sideways' })).toThrow(/cloud\.sync\.direction: /)
    expect(bad({ own: 'yes' })).toThrow(/cloud\.sync\.own: .*boolean/)
    expect(bad({ shadows: {} })).toThrow(/cloud\.sync\.shadows: .*array/)
    expect(bad({ shadows: [{ thing: 'no/slash' }] })).toThrow(/cloud\.sync\.shadows\.0\.thing: expected a thing name/)
    expect(bad({ shadows: [{ thing: 't', named: ['x y'] }] })).toThrow(/cloud\.sync\.shadows\.0\.named\.0: expected a shadow name/)
    expect(bad({ shadows: [{ thing: 't', classic: 1 }] })).toThrow(/cloud\.sync\.shadows\.0\.classic: /)
    expect(bad({ shadows: [{ thing: 't', classic: false }] })).toThrow(/cloud\.sync\.shadows\.0: names no shadow/)
    expect(bad({ shadows: [{ thing: 't', extra: 1 }] })).toThrow(/cloud\.sync\.shadows\.0: unknown key\(s\) 'extra'/)
    expect(bad({ interval: 5 })).toThrow(/cloud\.sync: unknown key\(s\) 'interval'/)
  })
})

describe('syncTargets and syncedDevices', () => {
  it('lists each shadow once, own first, and only other things as devices', () => {
    const targets = syncTargets({
      own: true,
      direction: 'both',
      shadows: [
        { thing: 'gw-1', classic: true, named: ['deploy'] },
        { thing: 'lamp-1', classic: true, named: ['cfg', 'cfg'] },
        { thing: 'lamp-1', classic: false, named: ['cfg'] },
      ],
    }, 'gw-1')
    expect(targets).toEqual([
      { thingName: 'gw-1' }, { thingName: 'gw-1', shadowName: 'deploy' }, { thingName: 'lamp-1' }, { thingName: 'lamp-1', shadowName: 'cfg' },
    ])
    expect(syncedDevices(targets, 'gw-1')).toEqual(['lamp-1'])
  })

  it('syncs nothing of its own when own is false', () => {
    expect(syncTargets({ own: false, direction: 'both', shadows: [] }, 'gw-1')).toEqual([])
  })
})
