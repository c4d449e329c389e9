import { describe, expect, it } from 'vitest'
import { CallSlots } from '../../../coordinator/tasks/call-slots.js'

interface Gate {
  promise: Promise<void>
  open(): void
}

function gate(): Gate {
  let open!: () => void
  const promise = new Promise<void>((r) => {
    open = r
  })
  return { promise, open }
}

/** Calls that each hold their slot until released, recording the order in which they started. */
function recorder(slots: CallSlots) {
  const started: string[] = []
  const gates = new Map<string, Gate>()
  const call = (task: string, id: string, priority = 1): Promise<string> => {
    const g = gate()
    gates.set(id, g)
    return slots.run(task, priority, async () => {
      started.push(id)
      await g.promise
      return id
    })
  }
  const release = (id: string): void => gates.get(id)?.open()
  return { started, call, release }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('CallSlots', () => {
  it('never gives one task more than maxPerTask slots, leaving the rest to others', async () => {
    const slots = new CallSlots(4, 2)
    const r = recorder(slots)
    const hog = Array.from({ length: 10 }, (_, i) => r.call('hog', `hog${i}`))
    await turn()
    expect(r.started).toEqual(['hog0', 'hog1'])
    expect(slots.held('hog')).toBe(2)
    const good = [r.call('good', 'good0'), r.call('good', 'good1')]
    await turn()
    expect(r.started).toEqual(['hog0', 'hog1', 'good0', 'good1'])
    for (const id of ['hog0', 'hog1', 'good0', 'good1', ...Array.from({ length: 8 }, (_, i) => `hog${i + 2}`)]) r.release(id)
    expect(await Promise.all([...hog, ...good])).toHaveLength(12)
    expect(slots.held('hog')).toBe(0)
  })

  it('gives a freed slot to the waiting task that holds the fewest, before a deep queue queued earlier', async () => {
    const slots = new CallSlots(3, 3)
    const r = recorder(slots)
    const calls = [r.call('a', 'a0'), r.call('a', 'a1'), r.call('a', 'a2'), r.call('a', 'a3'), r.call('a', 'a4'), r.call('b', 'b0')]
    await turn()
    expect(r.started).toEqual(['a0', 'a1', 'a2'])
    r.release('a0')
    await turn()
    await turn()
    // a3 has waited longer, but b holds no slot.
    expect(r.started).toEqual(['a0', 'a1', 'a2', 'b0'])
    for (const id of ['a1', 'a2', 'a3', 'a4', 'b0']) r.release(id)
    await Promise.all(calls)
    expect(r.started.slice(4)).toEqual(['a3', 'a4'])
  })

  it('serves higher priority first, then the task holding fewer slots', async () => {
    const slots = new CallSlots(1, 1)
    const r = recorder(slots)
    const calls = [r.call('blocker', 'blocker'), r.call('bulk', 'bulk', 0), r.call('normal', 'normal', 1), r.call('control', 'control', 2)]
    await turn()
    for (const id of ['blocker', 'control', 'normal', 'bulk']) {
      r.release(id)
      await turn()
      await turn()
    }
    await Promise.all(calls)
    expect(r.started).toEqual(['blocker', 'control', 'normal', 'bulk'])
  })

  it('frees the slot of a call that throws, and passes its error on', async () => {
    const slots = new CallSlots(1, 1)
    await expect(slots.run('t', 1, async () => { throw new Error('boom') })).rejects.toThrow('boom')
    expect(slots.held('t')).toBe(0)
    await expect(slots.run('t', 1, async () => 'next')).resolves.toBe('next')
  })

  it('never lets maxPerTask exceed the capacity', () => {
    expect(new CallSlots(2, 8).maxPerTask).toBe(2)
  })
})
