import { describe, expect, it } from 'vitest'
import { decode } from 'cbor-x'
import { DeviceClosedError } from '../../../devices/sdk/index.js'
import { encodeTelemetry, telemetryTopic } from '../../../devices/sdk/telemetry.js'
import { TelemetryOutbox, type OutgoingMessage } from '../../../devices/sdk/telemetry-outbox.js'

/** A transport whose acks the test releases by hand. */
function harness(online: boolean, limits = { maxMessages: 10, maxBytes: 1000 }) {
  const state = { online }
  const sent: OutgoingMessage[] = []
  const acks: Array<(err?: Error) => void> = []
  const outbox = new TelemetryOutbox(limits, (msg, done) => {
    sent.push(msg)
    acks.push(done)
  }, () => state.online)
  return { state, sent, acks, outbox }
}

const msg = (n: number): OutgoingMessage => ({ topic: 't', payload: Buffer.from(String(n)), qos: 1 })

describe('TelemetryOutbox', () => {
  it('should send at once while online and resolve sent on the ack', async () => {
    const h = harness(true)
    const p = h.outbox.publish(msg(1))
    expect(h.sent).toHaveLength(1)
    h.acks[0]!()
    expect(await p).toBe('sent')
    expect(h.outbox.stats()).toEqual({ sent: 1, buffered: 0, bufferedBytes: 0, dropped: 0 })
  })

  it('should buffer while offline and flush in order when back online', async () => {
    const h = harness(false)
    const ps = [1, 2, 3].map((n) => h.outbox.publish(msg(n)))
    expect(h.sent).toHaveLength(0)
    expect(h.outbox.stats()).toMatchObject({ buffered: 3, bufferedBytes: 3 })
    h.state.online = true
    h.outbox.flush()
    expect(h.sent.map((m) => m.payload.toString())).toEqual(['1', '2', '3'])
    for (const ack of h.acks) ack()
    expect(await Promise.all(ps)).toEqual(['sent', 'sent', 'sent'])
  })

  it('should resolve evicted messages as dropped', async () => {
    const h = harness(false, { maxMessages: 1, maxBytes: 1000 })
    const first = h.outbox.publish(msg(1))
    void h.outbox.publish(msg(2))
    expect(await first).toBe('dropped')
    expect(h.outbox.stats()).toMatchObject({ buffered: 1, dropped: 1 })
  })

  it('should settle buffered and unacknowledged messages as dropped on close, and refuse new ones', async () => {
    const h = harness(true)
    const inFlight = h.outbox.publish(msg(1))
    h.state.online = false
    const buffered = h.outbox.publish(msg(2))
    h.outbox.close()
    expect(await Promise.all([inFlight, buffered])).toEqual(['dropped', 'dropped'])
    h.acks[0]!()
    expect(h.outbox.stats()).toMatchObject({ sent: 0, dropped: 2 })
    await expect(h.outbox.publish(msg(3))).rejects.toBeInstanceOf(DeviceClosedError)
  })

  it('should reject when the transport reports an error', async () => {
    const h = harness(true)
    const p = h.outbox.publish(msg(1))
    h.acks[0]!(new Error('broken pipe'))
    await expect(p).rejects.toThrow('broken pipe')
  })
})

describe('telemetry encoding', () => {
  it('should encode JSON and plain CBOR maps, and refuse undefined', () => {
    expect(encodeTelemetry({ t: 21.5 }, 'json').toString()).toBe('{"t":21.5}')
    const cbor = encodeTelemetry({ t: 21.5, tags: ['x'] }, 'cbor')
    expect(decode(cbor)).toEqual({ t: 21.5, tags: ['x'] })
    expect(cbor.length).toBeLessThan(encodeTelemetry({ t: 21.5, tags: ['x'] }, 'json').length)
    expect(() => encodeTelemetry(undefined, 'json')).toThrow(TypeError)
    expect(telemetryTopic('plug-1')).toBe('things/plug-1/telemetry')
  })
})
