import { describe, expect, it } from 'vitest'
import { grantLimits, trimmedLimits } from '../../../coordinator/tasks/limits.js'
import { resolveCaps, validateOptions, type TaskServiceOptions } from '../../../coordinator/tasks/options.js'

const requested = { memoryMb: 64, cpuMsPerCall: 60_000, wallMsPerCall: 600_000, maxConcurrent: 64, queueSize: 100_000 }

describe('granted limits', () => {
  it('grants each request up to its cap, and heap as asked (tasks.maxMemoryMb refuses instead)', () => {
    const caps = resolveCaps({ maxConcurrentCalls: 8, caps: {} })
    expect(caps).toEqual({ maxConcurrent: 4, queueSize: 5000, cpuMsPerCall: 1000, wallMsPerCall: 30_000 })
    const granted = grantLimits(requested, caps)
    expect(granted).toEqual({ memoryMb: 64, cpuMsPerCall: 1000, wallMsPerCall: 30_000, maxConcurrent: 4, queueSize: 5000 })
    expect(trimmedLimits(requested, granted)).toEqual({
      cpuMsPerCall: { requested: 60_000, granted: 1000 }, wallMsPerCall: { requested: 600_000, granted: 30_000 },
      maxConcurrent: { requested: 64, granted: 4 }, queueSize: { requested: 100_000, granted: 5000 },
    })
  })

  it('grants a request within the caps unchanged', () => {
    const modest = { memoryMb: 32, cpuMsPerCall: 100, wallMsPerCall: 5000, maxConcurrent: 1, queueSize: 1000 }
    const granted = grantLimits(modest, resolveCaps({ maxConcurrentCalls: 8 }))
    expect(granted).toEqual(modest)
    expect(trimmedLimits(modest, granted)).toEqual({})
  })

  it('leaves one task at most half of the global slots by default, and at least one', () => {
    expect(resolveCaps({ maxConcurrentCalls: 2 }).maxConcurrent).toBe(1)
    expect(resolveCaps({ maxConcurrentCalls: 1 }).maxConcurrent).toBe(1)
    expect(resolveCaps({ maxConcurrentCalls: 9 }).maxConcurrent).toBe(4)
    expect(resolveCaps({ maxConcurrentCalls: 9, caps: { maxConcurrent: 9 } }).maxConcurrent).toBe(9)
  })

  it('refuses caps that cannot hold, naming them', () => {
    const base = { maxConcurrentCalls: 4, maxBundleBytes: 1024 } as TaskServiceOptions
    expect(() => validateOptions({ ...base, caps: { maxConcurrent: 5 } })).toThrow('caps.maxConcurrent (5) must be at most maxConcurrentCalls (4)')
    expect(() => validateOptions({ ...base, caps: { cpuMsPerCall: 10, wallMsPerCall: 5 } })).toThrow('caps.wallMsPerCall (5) must be at least caps.cpuMsPerCall (10)')
    expect(() => validateOptions({ ...base, caps: { queueSize: 0 } })).toThrow('caps.queueSize must be an integer >= 1, got 0')
  })
})
