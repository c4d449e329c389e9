import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { Supervised } from '../../../hardware/adapters/supervisor.js'
import type { Adapter } from '../../../hardware/adapters/adapter.js'

/** An adapter whose first `failures` starts fail; `lose()` plays an unplugged device. */
function flaky(failures: number): Adapter & { starts: number; stops: number; lose(): void } {
  let lost: ((err: Error) => void) | undefined
  const a = {
    thing: 'meter-1', kind: 'serial' as const, starts: 0, stops: 0,
    start: async (onLost: (err: Error) => void) => {
      a.starts++
      if (a.starts <= failures) throw new Error(`ENOENT /dev/ttyUSB0 (attempt ${a.starts})`)
      lost = onLost
    },
    stop: async () => { a.stops++ },
    lose: () => lost?.(new Error('serial port closed')),
  }
  return a
}

const retry = { initialMs: 10, maxMs: 40 }

describe('Supervised adapter', () => {
  it('retries a failed start with backoff until the hardware appears', async () => {
    const adapter = flaky(3)
    const s = new Supervised(adapter, silentLogger(), retry)
    await s.start()
    expect(s.status()).toMatchObject({ state: 'retrying', lastError: 'ENOENT /dev/ttyUSB0 (attempt 1)', retries: 0 })
    await expect.poll(() => s.status().state, { timeout: 2000 }).toBe('running')
    expect(s.status()).toEqual({ thing: 'meter-1', kind: 'serial', state: 'running', lastError: null, retries: 3 })
    expect(adapter.stops).toBe(3)
    await s.stop()
  })

  it('restarts an adapter whose hardware went away', async () => {
    const adapter = flaky(0)
    const s = new Supervised(adapter, silentLogger(), retry)
    await s.start()
    adapter.lose()
    expect(s.status()).toMatchObject({ state: 'retrying' })
    await expect.poll(() => adapter.starts, { timeout: 2000 }).toBe(2)
    await expect.poll(() => s.status().state).toBe('running')
    await s.stop()
  })

  it('stops retrying once stopped', async () => {
    const adapter = flaky(100)
    const s = new Supervised(adapter, silentLogger(), retry)
    await s.start()
    await s.stop()
    const starts = adapter.starts
    await new Promise((r) => setTimeout(r, 60))
    expect(adapter.starts).toBe(starts)
    expect(s.status().state).toBe('stopped')
  })
})
