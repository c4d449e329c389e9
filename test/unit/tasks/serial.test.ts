import { describe, expect, it } from 'vitest'
import { KeyedSerial } from '../../../coordinator/tasks/serial.js'

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('KeyedSerial', () => {
  it('runs operations on one key in order, one at a time, even after a failure', async () => {
    const serial = new KeyedSerial()
    const log: string[] = []
    const op = (name: string, fail = false) => serial.run('a', async () => {
      log.push(`${name} start`)
      await tick()
      log.push(`${name} end`)
      if (fail) throw new Error(name)
      return name
    })
    const results = await Promise.allSettled([op('one', true), op('two')])
    expect(log).toEqual(['one start', 'one end', 'two start', 'two end'])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled'])
  })

  it('runs different keys concurrently', async () => {
    const serial = new KeyedSerial()
    const log: string[] = []
    await Promise.all(['a', 'b'].map((key) => serial.run(key, async () => {
      log.push(`${key} start`)
      await tick()
      log.push(`${key} end`)
    })))
    expect(log.slice(0, 2)).toEqual(['a start', 'b start'])
  })

  it('checks `before` when the operation\'s turn comes, and reports idle once all settled', async () => {
    const serial = new KeyedSerial()
    let open = true
    const first = serial.run('a', async () => {
      await tick()
      open = false
    })
    const second = serial.run('a', async () => 'ran', () => {
      if (!open) throw new Error('closed')
    })
    await serial.idle()
    await first
    await expect(second).rejects.toThrow('closed')
  })
})
