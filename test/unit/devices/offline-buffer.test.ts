import { describe, expect, it } from 'vitest'
import { OfflineBuffer } from '../../../devices/sdk/offline-buffer.js'

const buffer = (maxMessages: number, maxBytes: number): OfflineBuffer<string> => new OfflineBuffer<string>({ maxMessages, maxBytes }, (s) => s.length)

describe('OfflineBuffer', () => {
  it('should drain in push order and empty itself', () => {
    const b = buffer(10, 100)
    for (const s of ['a', 'bb', 'ccc']) b.push(s)
    expect([b.length, b.bytes]).toEqual([3, 6])
    expect(b.drain()).toEqual(['a', 'bb', 'ccc'])
    expect([b.length, b.bytes, b.drain()]).toEqual([0, 0, []])
  })

  it('should drop the oldest beyond the count cap', () => {
    const b = buffer(2, 100)
    expect(b.push('1')).toEqual([])
    expect(b.push('2')).toEqual([])
    expect(b.push('3')).toEqual(['1'])
    expect(b.drain()).toEqual(['2', '3'])
  })

  it('should drop as many of the oldest as needed to fit the byte cap', () => {
    const b = buffer(100, 10)
    b.push('aaaa')
    b.push('bbbb')
    expect(b.push('ccccccc')).toEqual(['aaaa', 'bbbb'])
    expect(b.bytes).toBe(7)
  })

  it('should drop a message larger than the whole byte cap instead of emptying the buffer for it', () => {
    const b = buffer(100, 4)
    b.push('ab')
    expect(b.push('too-large')).toEqual(['too-large'])
    expect(b.drain()).toEqual(['ab'])
  })

  it('should refuse caps below 1', () => {
    expect(() => buffer(0, 10)).toThrow(RangeError)
    expect(() => buffer(1, 0)).toThrow(RangeError)
  })
})
