import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../../coordinator/config/index.js'
import { boardConfigDefaults, boardLimits, detectBoard, profileOfModel } from '../../../hardware/index.js'
import { tempDir } from '../../helpers/tmp.js'
import { BOARDS, writeFakeRoot } from './fake-root.js'

describe('board detection from a /proc, /sys and /dev tree', () => {
  const tmp = tempDir('edge-board-')
  afterAll(() => tmp.remove())
  const rootOf = (name: keyof typeof BOARDS): string => writeFakeRoot(join(tmp.dir, name), BOARDS[name].files, [...BOARDS[name].devices])
  const detect = (name: keyof typeof BOARDS, profile?: 'auto' | 'pi4'): ReturnType<typeof detectBoard> =>
    detectBoard({ root: rootOf(name), arch: BOARDS[name].arch, ...(profile === undefined ? {} : { profile }) })

  it.each([
    ['pi-zero-2w', 'Raspberry Pi Zero 2 W Rev 1.0', 512, ['board=pi-zero-2w', 'arch=arm64', 'memory=512mb', 'gpio', 'i2c', 'serial']],
    ['pi3', 'Raspberry Pi 3 Model B Plus Rev 1.3', 1024, ['board=pi3', 'arch=armv7', 'memory=1gb', 'gpio']],
    ['pi4', 'Raspberry Pi 4 Model B Rev 1.4', 4096, ['board=pi4', 'arch=arm64', 'memory=4gb', 'gpio', 'i2c', 'serial', 'camera']],
    ['pi5', 'Raspberry Pi 5 Model B Rev 1.0', 8192, ['board=pi5', 'arch=arm64', 'memory=8gb', 'gpio', 'serial']],
    ['generic', null, 16384, ['board=generic', 'arch=x64', 'memory=16gb', 'camera']],
  ] as const)('detects %s: model, nominal memory and capability tags', (name, model, memoryMb, tags) => {
    const board = detect(name)
    expect(board).toMatchObject({ profile: name, detectedProfile: name, model, memoryMb })
    expect(board.tags).toEqual(tags)
  })

  it('reads the model from /proc/cpuinfo when there is no device tree', () => {
    const root = writeFakeRoot(join(tmp.dir, 'old-kernel'), { 'proc/cpuinfo': 'Hardware\t: BCM2835\nRevision\t: a02082\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n' })
    expect(detectBoard({ root, arch: 'arm' })).toMatchObject({ profile: 'pi3', model: 'Raspberry Pi 3 Model B Rev 1.2', memoryMb: null, arch: 'armv7' })
  })

  it('tags an armv6 board as such (Node no longer ships for it) and gives it the generic profile', () => {
    const root = writeFakeRoot(join(tmp.dir, 'zero-w'), {
      'proc/device-tree/model': 'Raspberry Pi Zero W Rev 1.1\0', 'proc/cpuinfo': 'model name\t: ARMv6-compatible processor rev 7 (v6l)\n',
    })
    expect(detectBoard({ root, arch: 'arm' })).toMatchObject({ profile: 'generic', arch: 'armv6' })
  })

  it('maps every supported model string to its profile', () => {
    expect(profileOfModel('Raspberry Pi Compute Module 4 Rev 1.0')).toBe('pi4')
    expect(profileOfModel('Raspberry Pi 400 Rev 1.0')).toBe('pi4')
    expect(profileOfModel('Raspberry Pi 500 Rev 1.0')).toBe('pi5')
    expect(profileOfModel('Raspberry Pi 3 Model A Plus Rev 1.0')).toBe('pi3')
    expect(profileOfModel('Raspberry Pi 2 Model B Rev 1.1')).toBe('generic')
    expect(profileOfModel(null)).toBe('generic')
  })

  it('sees nothing but the architecture in an empty tree', () => {
    const root = writeFakeRoot(join(tmp.dir, 'empty'), {})
    expect(detectBoard({ root, arch: 'x64' })).toEqual({ profile: 'generic', detectedProfile: 'generic', model: null, memoryMb: null, arch: 'x64', tags: ['board=generic', 'arch=x64'] })
  })

  it('applies a forced profile but still tags the hardware it found', () => {
    const board = detect('pi-zero-2w', 'pi4')
    expect(board).toMatchObject({ profile: 'pi4', detectedProfile: 'pi-zero-2w' })
    expect(board.tags).toContain('board=pi-zero-2w')
  })

  it('sizes limits to the board: a Pi Zero 2 W gets small ones, an 8 GB Pi 5 large ones', () => {
    expect(boardLimits(detect('pi-zero-2w'))).toEqual({
      tasks: { maxConcurrentCalls: 2, maxTasks: 8, maxMemoryMb: 64, memoryBudgetMb: 307 },
      broker: { concurrency: 100, maxPacketBytes: 256 * 1024 },
      cloud: { outbox: { maxBytes: 32 * 1024 * 1024 } },
      log: { maxBytes: 4 * 1024 * 1024, maxFiles: 2 },
    })
    expect(boardLimits(detect('pi3')).tasks).toEqual({ maxConcurrentCalls: 4, maxTasks: 16, maxMemoryMb: 128, memoryBudgetMb: 614 })
    expect(boardLimits(detect('pi5')).tasks).toEqual({ maxConcurrentCalls: 8, maxTasks: 64, maxMemoryMb: 512, memoryBudgetMb: 4915 })
    expect(boardLimits(detect('pi5')).broker.maxPacketBytes).toBe(1024 * 1024)
  })

  it("uses a forced profile's own RAM, not the board's", () => {
    expect(boardLimits(detect('pi-zero-2w', 'pi4')).tasks).toEqual({ maxConcurrentCalls: 8, maxTasks: 32, maxMemoryMb: 256, memoryBudgetMb: 1228 })
  })

  it('keeps the outbox to a small share of small storage', () => {
    const zero = detect('pi-zero-2w')
    expect(boardLimits(zero, 200 * 1024 * 1024).cloud.outbox.maxBytes).toBe(10 * 1024 * 1024)
    expect(boardLimits(zero, 10 * 1024 * 1024).cloud.outbox.maxBytes).toBe(4 * 1024 * 1024)
    expect(boardLimits(zero, 64 * 1024 ** 3).cloud.outbox.maxBytes).toBe(32 * 1024 * 1024)
  })

  describe('as config defaults (loadConfig: DEFAULTS < profile < file < overrides)', () => {
    const load = (hardware: Record<string, unknown>, extra: Record<string, unknown> = {}): ReturnType<typeof loadConfig> =>
      loadConfig({ boardDefaults: boardConfigDefaults, overrides: { dataDir: join(tmp.dir, 'data'), hardware, ...extra } })

    it("applies the detected board's limits", () => {
      const c = load({ root: rootOf('pi-zero-2w') })
      expect(c.tasks).toMatchObject({ maxConcurrentCalls: 2, maxTasks: 8, maxMemoryMb: 64 })
      expect(c.broker.concurrency).toBe(100)
      expect(c.broker.maxPacketBytes).toBe(256 * 1024)
      expect(c.log).toMatchObject({ maxBytes: 4 * 1024 * 1024, maxFiles: 2 })
    })

    it('lets every explicit key win over the profile, key by key', () => {
      const c = load({ root: rootOf('pi-zero-2w') }, { tasks: { maxConcurrentCalls: 3 }, log: { maxFiles: 5 } })
      expect(c.tasks).toMatchObject({ maxConcurrentCalls: 3, maxTasks: 8, maxMemoryMb: 64 })
      expect(c.log).toMatchObject({ maxBytes: 4 * 1024 * 1024, maxFiles: 5 })
    })

    it('applies a profile named in the config instead of the detected one', () => {
      expect(load({ root: rootOf('pi-zero-2w'), profile: 'pi5' }).tasks.maxConcurrentCalls).toBe(8)
    })

    it('leaves a malformed hardware section to validation, which names the key', () => {
      expect(() => load({ root: rootOf('pi3'), profile: 'pi6' })).toThrow(/hardware\.profile: .*"auto"\|"pi-zero-2w"/)
    })

    it('changes nothing without a board resolver (tests, library use)', () => {
      expect(loadConfig({ overrides: { hardware: { root: rootOf('pi-zero-2w') } } }).tasks.maxConcurrentCalls).toBe(8)
    })
  })
})
