import { describe, expect, it } from 'vitest'
import { LOG_DEFAULTS, TaskLog, type LogEntry, type LogIntake } from '../../../coordinator/tasks/logs.js'
import { capturingLogger, eventually } from '../../helpers/tasks.js'

/** An intake that lets everything through unless a test is about the intake. */
const OPEN: LogIntake = { logLinesPerSecond: 1_000_000, logBytesPerSecond: 1_000_000_000 }

function setup(intake = OPEN): { log: TaskLog; records: Array<Record<string, unknown>>; advance(ms: number): void } {
  let now = Date.parse('2025-01-01T00:00:00Z')
  const { log, records } = capturingLogger()
  return { log: new TaskLog('t', log, { now: () => now }, intake), records, advance: (ms) => void (now += ms) }
}

describe('TaskLog', () => {
  it('keeps entries with time, level, task, version and source', () => {
    const { log } = setup()
    log.fromTask('1.0.0', 'info', 'hello', { n: 1 })
    log.lifecycle('1.0.0', 'warn', 'refused')
    expect(log.tail(10)).toEqual([
      { time: '2025-01-01T00:00:00.000Z', level: 'info', msg: 'hello', task: 't', version: '1.0.0', source: 'task', fields: { n: 1 } },
      { time: '2025-01-01T00:00:00.000Z', level: 'warn', msg: 'refused', task: 't', version: '1.0.0', source: 'lifecycle' },
    ])
  })

  it('keeps only the last LOG_DEFAULTS.capacity entries', () => {
    const { log, advance } = setup()
    for (let i = 0; i < LOG_DEFAULTS.capacity + 5; i++) {
      advance(1000)
      log.lifecycle('1', 'info', `line ${i}`)
    }
    const all = log.tail(Infinity)
    expect(all).toHaveLength(LOG_DEFAULTS.capacity)
    expect(all[0]?.msg).toBe('line 5')
    expect(log.tail(2).map((e) => e.msg)).toEqual([`line ${LOG_DEFAULTS.capacity + 3}`, `line ${LOG_DEFAULTS.capacity + 4}`])
    expect(log.tail(0)).toEqual([])
  })

  it('feeds followers until they unfollow', () => {
    const { log } = setup()
    const got: LogEntry[] = []
    const unfollow = log.follow((e) => got.push(e))
    log.fromTask('1', 'info', 'a')
    unfollow()
    log.fromTask('1', 'info', 'b')
    expect(got.map((e) => e.msg)).toEqual(['a'])
  })

  it('survives a follower that throws', () => {
    const { log } = setup()
    log.follow(() => {
      throw new Error('broken pipe')
    })
    log.fromTask('1', 'info', 'a')
    expect(log.tail(1)[0]?.msg).toBe('a')
  })

  it('writes to the daemon log tagged with task and version, keeping task fields nested', () => {
    const { log, records } = setup()
    log.fromTask('2.0.0', 'error', 'bad', { level: 'spoofed', task: 'other' })
    expect(records).toEqual([expect.objectContaining({ level: 50, msg: 'bad', task: 't', version: '2.0.0', source: 'task', fields: { level: 'spoofed', task: 'other' } })])
  })

  it('rate-limits task lines to the daemon log, keeps them all in the ring, and reports what it skipped', () => {
    const { log, records, advance } = setup()
    const burst = LOG_DEFAULTS.sinkBurst + 30
    for (let i = 0; i < burst; i++) log.fromTask('1', 'info', `spam ${i}`)
    expect(records).toHaveLength(LOG_DEFAULTS.sinkBurst)
    expect(log.tail(Infinity)).toHaveLength(burst)
    advance(1000)
    log.fromTask('1', 'info', 'later')
    expect(records.at(-2)).toMatchObject({ msg: 'task log lines were not written to the daemon log (rate limit)', suppressed: 30 })
    expect(records.at(-1)).toMatchObject({ msg: 'later' })
  })

  it('always writes unthrottled lifecycle events', () => {
    const { log, records } = setup()
    for (let i = 0; i < LOG_DEFAULTS.sinkBurst; i++) log.fromTask('1', 'info', 'spam')
    log.lifecycle('1', 'error', 'task marked broken')
    log.lifecycle('1', 'warn', 'call refused', undefined, true)
    expect(records.map((r) => r['msg']).slice(-1)).toEqual(['task marked broken'])
  })

  it('clips long messages and replaces oversized or unserializable fields', () => {
    const { log } = setup()
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    log.fromTask('1', 'info', 'x'.repeat(LOG_DEFAULTS.maxMessageChars + 10), { blob: 'y'.repeat(LOG_DEFAULTS.maxFieldsChars) })
    log.fromTask('1', 'info', 'cyclic', cyclic)
    const [long, odd] = log.tail(2)
    expect(long?.msg).toHaveLength(LOG_DEFAULTS.maxMessageChars + 1)
    expect(long?.fields).toEqual({ truncated: true, chars: LOG_DEFAULTS.maxFieldsChars + 11 })
    expect(odd?.fields).toEqual({ unserializable: true })
  })

  it('drops task lines beyond logLinesPerSecond (bursts of twice as many) and reports them in one counted entry', async () => {
    const { log, advance } = setup({ logLinesPerSecond: 10, logBytesPerSecond: 1_000_000 })
    const first = Array.from({ length: 25 }, (_, i) => log.fromTask('1', 'info', `spam ${i}`))
    // The first dropped line says which limit, so the caller counts one offence per report.
    expect(first.filter((d) => d !== undefined)).toEqual(['logLinesPerSecond'])
    expect(first.findIndex((d) => d !== undefined)).toBe(20)
    expect(log.tail(Infinity)).toHaveLength(20)
    await eventually(() => log.tail(1)[0]?.msg === 'dropped 5 lines', 3000, 'the dropped-lines entry')
    expect(log.tail(1)[0]).toMatchObject({ source: 'lifecycle', level: 'warn', fields: { dropped: 5, limit: 'logLinesPerSecond' } })
    advance(1000)
    expect(log.fromTask('1', 'info', 'later')).toBeUndefined()
    expect(log.tail(1)[0]?.msg).toBe('later')
  })

  it('drops task lines beyond logBytesPerSecond', async () => {
    const { log } = setup({ logLinesPerSecond: 1000, logBytesPerSecond: 1000 })
    const dropped = Array.from({ length: 5 }, () => log.fromTask('1', 'info', 'x'.repeat(900)))
    expect(dropped).toEqual([undefined, undefined, 'logBytesPerSecond', undefined, undefined])
    await eventually(() => log.tail(1)[0]?.msg === 'dropped 3 lines', 3000, 'the dropped-lines entry')
    expect(log.tail(1)[0]?.fields).toEqual({ dropped: 3, limit: 'logBytesPerSecond' })
  })

  it('holds at most LOG_DEFAULTS.ringChars characters, evicting the oldest entries', () => {
    const { log } = setup()
    const line = 'z'.repeat(LOG_DEFAULTS.maxMessageChars)
    const fit = Math.floor(LOG_DEFAULTS.ringChars / line.length)
    for (let i = 0; i < fit + 10; i++) log.fromTask('1', 'info', line)
    expect(log.tail(Infinity)).toHaveLength(fit)
  })
})
