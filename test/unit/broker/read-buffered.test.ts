import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { readBuffered } from '../../../coordinator/broker/read-buffered.js'

describe('readBuffered', () => {
  const buffered = async (): Promise<PassThrough> => {
    const s = readBuffered(new PassThrough())
    for (const chunk of ['ab', 'cd', 'ef']) s.write(Buffer.from(chunk))
    await new Promise((resolve) => s.once('readable', resolve))
    return s
  }

  // On Node 26 a bare PassThrough answers 'ab' here (nodejs/node#60441); aedes would wait forever for the rest.
  it('returns every buffered chunk from one size-less read, as aedes expects', async () => {
    const s = await buffered()
    expect(String(s.read())).toBe('abcdef')
    expect(s.read()).toBeNull()
  })

  it('leaves a sized read alone', async () => {
    const s = await buffered()
    expect(String(s.read(3))).toBe('abc')
    expect(String(s.read())).toBe('def')
  })

  it('answers null on an empty stream', () => {
    expect(readBuffered(new PassThrough()).read()).toBeNull()
  })
})
