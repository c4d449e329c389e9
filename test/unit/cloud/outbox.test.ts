import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Outbox, type OutboxInput, type OutboxOpenOptions } from '../../../coordinator/cloud/outbox.js'
import type { Clock } from '../../../coordinator/core/clock.js'
import type { Logger } from '../../../coordinator/core/log.js'
import { openDatabase } from '../../../coordinator/store/db.js'
import { sleep } from '../../helpers/cloud.js'
import { tempDir } from '../../helpers/tmp.js'

const START = Date.UTC(2030, 0, 1)

/** A clock that only moves when the test says so. */
function manualClock(): Clock & { advance(ms: number): void } {
  let t = START
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** A logger that keeps its JSON lines. */
function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { log, lines }
}

const m = (i: number, extra: Partial<OutboxInput> = {}): OutboxInput => ({ topic: `t/${i}`, payload: Buffer.from(`p${i}`), qos: 1, ...extra })

describe('Outbox', () => {
  let tmp: ReturnType<typeof tempDir>
  let file: string
  let clock: ReturnType<typeof manualClock>
  const open: Outbox[] = []

  beforeEach(() => {
    tmp = tempDir('outbox-')
    file = join(tmp.dir, 'outbox.sqlite')
    clock = manualClock()
  })

  afterEach(() => {
    for (const o of open.splice(0)) o.close()
    tmp.remove()
  })

  const outbox = (opts: OutboxOpenOptions = {}): Outbox => {
    const o = Outbox.open(file, { clock, ...opts })
    open.push(o)
    return o
  }

  const reopen = (o: Outbox, opts: OutboxOpenOptions = {}): Outbox => {
    o.close()
    open.splice(open.indexOf(o), 1)
    return outbox(opts)
  }

  const topics = (msgs: ReadonlyArray<{ topic: string }>): string[] => msgs.map((x) => x.topic)

  describe('order', () => {
    it('delivers FIFO within a priority and higher priorities first', () => {
      const o = outbox()
      o.enqueueMany([m(1), m(2), m(3, { priority: 5 }), m(4, { priority: -1 }), m(5, { priority: 5 }), m(6)])
      expect(topics(o.peek(10))).toEqual(['t/3', 't/5', 't/1', 't/2', 't/6', 't/4'])
    })

    it('take leases messages so the next take continues after them; release hands them back', () => {
      const o = outbox()
      o.enqueueMany([m(1), m(2), m(3), m(4)])
      expect(topics(o.take(2))).toEqual(['t/1', 't/2'])
      expect(topics(o.take(10))).toEqual(['t/3', 't/4'])
      expect(o.take(10)).toEqual([])
      expect(o.stats().inFlight).toBe(4)
      o.release([1, 2])
      expect(topics(o.take(10))).toEqual(['t/1', 't/2'])
      o.release()
      expect(o.stats().inFlight).toBe(0)
    })

    it('hands a nacked message out again before the unleased rest, without repeating leased ones', () => {
      const o = outbox()
      o.enqueueMany([m(1), m(2), m(3), m(4), m(5)])
      const [, second] = o.take(3)
      expect(o.nack(second?.id ?? -1, 'write failed')).toBe('retry')
      expect(topics(o.take(10))).toEqual(['t/2', 't/4', 't/5'])
    })

    it('hands out a higher-priority message that arrives while lower ones are leased, before the rest', () => {
      const o = outbox()
      o.enqueueMany([m(1), m(2), m(3)])
      o.take(1)
      o.enqueue(m(9, { priority: 2 }))
      expect(topics(o.take(2))).toEqual(['t/9', 't/2'])
    })

    it('ack removes messages and counts them delivered; acking twice or unknown ids is harmless', () => {
      const o = outbox()
      const ids = o.enqueueMany([m(1), m(2), m(3)]).map((r) => (r.accepted ? r.id : -1))
      const taken = o.take(2)
      expect(o.ack(taken.map((x) => x.id))).toBe(2)
      expect(o.ack([ids[0] as number, 999])).toBe(0)
      expect(o.stats()).toMatchObject({ queued: 1, delivered: 2, inFlight: 0 })
      expect(topics(o.peek(5))).toEqual(['t/3'])
    })

    it('keeps payload bytes, qos and priority intact', () => {
      const o = outbox()
      const payload = new Uint8Array(300).map((_, i) => i % 256)
      o.enqueue({ topic: 'bin/x', payload: payload.subarray(10, 260), qos: 0, priority: 3 })
      const [got] = o.take(1)
      expect(got).toMatchObject({ topic: 'bin/x', qos: 0, priority: 3, attempts: 0, enqueuedAt: START })
      expect([...(got?.payload ?? [])]).toEqual([...payload.subarray(10, 260)])
    })
  })

  describe('validation', () => {
    it('refuses invalid topics and messages, and messages over maxMessageBytes, without counting drops', () => {
      const o = outbox({ maxMessageBytes: 100 })
      expect(o.enqueue(m(1, { topic: 'a/#' }))).toEqual({ accepted: false, reason: 'invalid-topic' })
      expect(o.enqueue(m(1, { topic: '' }))).toEqual({ accepted: false, reason: 'invalid-topic' })
      expect(o.enqueue(m(1, { qos: 2 as 1 }))).toEqual({ accepted: false, reason: 'invalid-message' })
      expect(o.enqueue(m(1, { priority: 1.5 }))).toEqual({ accepted: false, reason: 'invalid-message' })
      expect(o.enqueue(m(1, { ttlMs: 0 }))).toEqual({ accepted: false, reason: 'invalid-message' })
      expect(o.enqueue(m(1, { payload: 'text' as unknown as Uint8Array }))).toEqual({ accepted: false, reason: 'invalid-message' })
      expect(o.enqueue(m(1, { payload: Buffer.alloc(100) }))).toEqual({ accepted: false, reason: 'too-large' })
      expect(o.stats()).toMatchObject({ queued: 0, dropped: { full: 0, expired: 0 } })
    })

    it('rejects bad options', () => {
      expect(() => outbox({ maxMessages: 0 })).toThrow(/maxMessages/)
      expect(() => outbox({ dropPolicy: 'drop-newest' as 'reject-new' })).toThrow(/dropPolicy/)
    })
  })

  describe('caps and drop policies', () => {
    it('drop-oldest evicts the oldest messages past maxMessages and counts them', () => {
      const o = outbox({ maxMessages: 3 })
      const results = o.enqueueMany([m(1), m(2), m(3), m(4), m(5)])
      expect(results.every((r) => r.accepted)).toBe(true)
      expect(topics(o.peek(10))).toEqual(['t/3', 't/4', 't/5'])
      expect(o.stats()).toMatchObject({ queued: 3, dropped: { full: 2, expired: 0 } })
    })

    it('drop-oldest evicts by bytes too (topic + payload)', () => {
      const o = outbox({ maxBytes: 30 })
      for (let i = 0; i < 5; i++) o.enqueue({ topic: `b/${i}`, payload: Buffer.alloc(7), qos: 1 })
      // Each message is 3 + 7 = 10 bytes: three fit.
      expect(topics(o.peek(10))).toEqual(['b/2', 'b/3', 'b/4'])
      expect(o.stats()).toMatchObject({ queued: 3, bytes: 30, dropped: { full: 2 } })
    })

    it('drop-oldest evicts lower priorities first and never a higher priority for a lower newcomer', () => {
      const o = outbox({ maxMessages: 3 })
      o.enqueueMany([m(1, { priority: 1 }), m(2), m(3, { priority: 1 })])
      expect(o.enqueue(m(4, { priority: 1 })).accepted).toBe(true)
      expect(topics(o.peek(10))).toEqual(['t/1', 't/3', 't/4'])
      expect(o.enqueue(m(5))).toEqual({ accepted: false, reason: 'full' })
      expect(o.stats().dropped.full).toBe(2)
    })

    it('reject-new keeps what is queued, refuses newcomers with reason full, and counts them', () => {
      const o = outbox({ maxMessages: 2, dropPolicy: 'reject-new' })
      const results = o.enqueueMany([m(1), m(2), m(3), m(4)])
      expect(results.map((r) => r.accepted)).toEqual([true, true, false, false])
      expect(results[2]).toEqual({ accepted: false, reason: 'full' })
      expect(topics(o.peek(10))).toEqual(['t/1', 't/2'])
      expect(o.stats().dropped.full).toBe(2)
      o.ack(o.take(1).map((x) => x.id))
      expect(o.enqueue(m(5)).accepted).toBe(true)
    })

    it('logs drops once per burst, not per message', async () => {
      const { log, lines } = capturingLogger()
      const o = outbox({ maxMessages: 10, dropLogIntervalMs: 100, log, synchronous: 'normal' })
      for (let i = 0; i < 500; i++) o.enqueue(m(i))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ msg: 'outbox dropped messages', dropped: { full: 1 } })
      await sleep(150)
      expect(lines).toHaveLength(2)
      expect(lines[1]).toMatchObject({ dropped: { full: 489 } })
      expect(o.stats().dropped.full).toBe(490)
    })
  })

  describe('expiry', () => {
    it('drops messages past their TTL or maxAgeMs before handing them out, and counts them', () => {
      const o = outbox({ maxAgeMs: 10_000 })
      o.enqueueMany([m(1, { ttlMs: 1000 }), m(2), m(3, { ttlMs: 60_000 })])
      clock.advance(999)
      expect(topics(o.peek(10))).toEqual(['t/1', 't/2', 't/3'])
      clock.advance(1)
      expect(topics(o.take(10))).toEqual(['t/2', 't/3'])
      expect(o.stats().dropped.expired).toBe(1)
      o.release()
      clock.advance(9000)
      expect(o.take(10)).toEqual([])
      expect(o.stats()).toMatchObject({ queued: 0, bytes: 0, dropped: { expired: 3 } })
    })

    it('reports the age of the oldest queued message', () => {
      const o = outbox()
      expect(o.stats().oldestAgeMs).toBe(0)
      o.enqueue(m(1))
      clock.advance(500)
      o.enqueue(m(2, { priority: 9 }))
      clock.advance(250)
      expect(o.stats().oldestAgeMs).toBe(750)
    })

    it('applies a lowered maxAgeMs to messages queued before a restart', () => {
      let o = outbox({ maxAgeMs: 60_000 })
      o.enqueueMany([m(1), m(2)])
      clock.advance(5000)
      o.enqueue(m(3))
      o = reopen(o, { maxAgeMs: 3000 })
      expect(topics(o.peek(10))).toEqual(['t/3'])
      expect(o.stats().dropped.expired).toBe(2)
    })
  })

  describe('retries and dead letters', () => {
    it('counts attempts; after maxAttempts the message becomes a dead letter and the next one flows', () => {
      const o = outbox({ maxAttempts: 3 })
      o.enqueueMany([m(1), m(2)])
      for (let attempt = 1; attempt <= 3; attempt++) {
        const [head] = o.take(1)
        expect(head).toMatchObject({ topic: 't/1', attempts: attempt - 1 })
        expect(o.nack(head?.id ?? -1, `refused #${attempt}`)).toBe(attempt < 3 ? 'retry' : 'dead-lettered')
      }
      expect(topics(o.take(10))).toEqual(['t/2'])
      const dead = o.deadLetters()
      expect(dead).toHaveLength(1)
      expect(dead[0]).toMatchObject({ topic: 't/1', attempts: 3, lastError: 'refused #3', deadAt: START })
      expect(dead[0]?.payload.toString()).toBe('p1')
      expect(o.stats()).toMatchObject({ queued: 1, deadLettered: 1, deadLetters: 1 })
      expect(o.nack(dead[0]?.id ?? -1, 'late')).toBe('gone')
    })

    it('requeues dead letters as new messages with attempts reset, and purges them', () => {
      const o = outbox({ maxAttempts: 1 })
      o.enqueueMany([m(1), m(2), m(3)])
      for (const x of o.take(2)) o.nack(x.id, 'no')
      expect(o.deadLetters().map((d) => d.topic)).toEqual(['t/1', 't/2'])
      expect(o.requeueDeadLetters([o.deadLetters()[0]?.id ?? -1, 12345])).toBe(1)
      expect(o.peek(10).map((x) => [x.topic, x.attempts])).toEqual([['t/3', 0], ['t/1', 0]])
      expect(o.purgeDeadLetters()).toBe(1)
      expect(o.stats()).toMatchObject({ deadLetters: 0, deadLettered: 2 })
    })

    it('keeps at most maxDeadLetters, pruning the oldest', () => {
      const o = outbox({ maxAttempts: 1, maxDeadLetters: 2 })
      o.enqueueMany([m(1), m(2), m(3)])
      for (const x of o.take(3)) o.nack(x.id, 'no')
      expect(o.deadLetters().map((d) => d.topic)).toEqual(['t/2', 't/3'])
      expect(o.stats()).toMatchObject({ deadLettered: 3, deadLetters: 2 })
    })
  })

  describe('durability', () => {
    it('keeps messages, order, attempts and counters across reopen; leases are forgotten', () => {
      let o = outbox({ maxMessages: 4, maxAttempts: 5 })
      o.enqueueMany([m(1), m(2), m(3), m(4), m(5)])
      const [second, third] = o.take(2)
      o.nack(second?.id ?? -1, 'timeout')
      o.ack([third?.id ?? -1])
      expect(topics(o.take(1))).toEqual(['t/2'])
      o = reopen(o, { maxMessages: 4, maxAttempts: 5 })
      expect(o.stats()).toMatchObject({ queued: 3, inFlight: 0, delivered: 1, dropped: { full: 1 } })
      expect(o.take(10).map((x) => [x.topic, x.attempts])).toEqual([['t/2', 1], ['t/4', 0], ['t/5', 0]])
      expect(o.enqueue(m(6)).accepted).toBe(true)
      // 't/N' + 'pN': 5 bytes each.
      expect(o.stats().bytes).toBe(4 * 5)
    })

    it('never reuses an id, even after the queue emptied and the file was reopened', () => {
      let o = outbox()
      const first = o.enqueue(m(1))
      o.ack(o.take(1).map((x) => x.id))
      o = reopen(o)
      const second = o.enqueue(m(2))
      expect(first.accepted && second.accepted && second.id > first.id).toBe(true)
    })

    it('groups enqueueAsync calls of one event-loop turn into one transaction, durable when they resolve', async () => {
      const db = openDatabase(file)
      let transactions = 0
      const original = db.transaction.bind(db)
      db.transaction = ((fn: (...args: unknown[]) => unknown) => {
        const tx = original(fn)
        return Object.assign((...args: unknown[]) => { transactions++; return tx(...args) }, tx)
      }) as typeof db.transaction
      const o = new Outbox(db, { clock })
      const before = transactions
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => o.enqueueAsync(m(i))))
      expect(transactions - before).toBe(1)
      expect(results.every((r) => r.accepted)).toBe(true)
      o.close()
      db.close()
      const again = outbox()
      expect(again.stats().queued).toBe(300)
      expect(topics(again.peek(2))).toEqual(['t/0', 't/1'])
    })

    it('commits pending enqueueAsync calls on close and refuses work after', async () => {
      const o = outbox()
      const pending = o.enqueueAsync(m(1))
      o.close()
      await expect(pending).resolves.toMatchObject({ accepted: true })
      expect(() => o.enqueue(m(2))).toThrow(/closed/)
      await expect(o.enqueueAsync(m(3))).rejects.toThrow(/closed/)
      open.splice(open.indexOf(o), 1)
      expect(outbox().stats().queued).toBe(1)
    })

    it('tells listeners when messages become available', () => {
      const o = outbox()
      let calls = 0
      const off = o.onAvailable(() => calls++)
      o.enqueueMany([m(1), m(2)])
      o.enqueue(m(1, { topic: '#' }))
      off()
      o.enqueue(m(3))
      expect(calls).toBe(1)
    })
  })
})
