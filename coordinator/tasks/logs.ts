import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { TaskLogEntry } from '../protocol/index.js'
import type { LogLevel } from '../sandbox/index.js'
import type { TaskLimitName } from './errors.js'
import { TokenBucket } from './host-budget.js'

/**
 * One line of a task's log: what its code said (`task`) or what happened to it (`lifecycle`).
 * A TaskLogEntry of the local API; the task's own fields stay under `fields` so they cannot
 * overwrite the fixed ones.
 */
export interface LogEntry extends TaskLogEntry {
  /** ISO 8601. */
  time: string
  level: LogLevel
  msg: string
  task: string
  version: string
  source: 'task' | 'lifecycle'
  fields?: Record<string, unknown>
}

export type LogListener = (entry: LogEntry) => void

export const LOG_DEFAULTS = Object.freeze({
  /** Entries kept per task for `logs` and late followers. */
  capacity: 1000,
  /** Characters (messages and fields) the ring may hold per task, whatever the number of entries. */
  ringChars: 512 * 1024,
  /** Lines dropped at the intake are reported in one entry per this interval. */
  dropReportMs: 1000,
  /** Longest message kept, in characters. */
  maxMessageChars: 2000,
  /** Largest `fields` object kept, as JSON characters. */
  maxFieldsChars: 4000,
  /** Task lines per second written to the daemon log; the ring buffer keeps them all regardless. */
  sinkLinesPerSecond: 50,
  sinkBurst: 200,
})

/** What a task may log: lines and bytes a second (tasks.hostLimits.logLinesPerSecond|logBytesPerSecond). */
export interface LogIntake {
  logLinesPerSecond: number
  logBytesPerSecond: number
}

/**
 * A task's log: a bounded ring buffer with followers, mirrored to the daemon's logger tagged with
 * task and version. Task-authored lines first pass the task's intake (lines and bytes a second);
 * lines beyond it are dropped before any work is done for them and reported as one
 * "dropped N lines" entry a second. The lines kept reach the daemon log through a second token
 * bucket, because a task logging in a loop must not fill the SD card (greengrass-nucleus #1649).
 */
export class TaskLog {
  readonly #task: string
  readonly #log: Logger
  readonly #clock: Clock
  /** Bounded by LOG_DEFAULTS.capacity; shifting 1000 references is cheap next to a log line. */
  readonly #ring: LogEntry[] = []
  readonly #listeners = new Set<LogListener>()
  #tokens: number = LOG_DEFAULTS.sinkBurst
  #refilledAt: number
  #suppressed = 0
  readonly #lines: TokenBucket
  readonly #bytes: TokenBucket
  /** Characters held by the ring, next to each entry's size. */
  #ringChars = 0
  readonly #sizes: number[] = []
  #dropped = 0
  #droppedBy: TaskLimitName = 'logLinesPerSecond'
  #dropVersion = ''
  #dropReport: NodeJS.Timeout | undefined

  constructor(task: string, log: Logger, clock: Clock, intake: LogIntake) {
    this.#task = task
    this.#log = log
    this.#clock = clock
    this.#refilledAt = clock.now()
    this.#lines = new TokenBucket(intake.logLinesPerSecond, 2 * intake.logLinesPerSecond, clock)
    this.#bytes = new TokenBucket(intake.logBytesPerSecond, 2 * intake.logBytesPerSecond, clock)
  }

  /**
   * A line the task's code wrote with ctx.log. Returns the limit it was dropped by when it is the
   * first line dropped since the last report, so the caller counts one offence per report.
   */
  fromTask(version: string, level: LogLevel, message: string, fields?: Record<string, unknown>): TaskLimitName | undefined {
    if (!this.#lines.take()) return this.#drop(version, 'logLinesPerSecond')
    const [entry, size] = this.#entry(version, 'task', level, message, fields)
    if (!this.#bytes.take(size)) return this.#drop(version, 'logBytesPerSecond')
    this.#keep(entry, size)
    if (this.#takeToken()) this.#sink(entry)
    else this.#suppressed++
    return undefined
  }

  /**
   * Something the service did to the task (installed, replaced, broken, refused a call). Events a
   * task or its traffic can repeat at will (refusals) pass `throttled` so they share the rate limit.
   */
  lifecycle(version: string, level: LogLevel, message: string, fields?: Record<string, unknown>, throttled = false): void {
    const [entry, size] = this.#entry(version, 'lifecycle', level, message, fields)
    this.#keep(entry, size)
    if (!throttled || this.#takeToken()) this.#sink(entry)
    else this.#suppressed++
  }

  /** The last `n` entries, oldest first. */
  tail(n: number): LogEntry[] {
    return n > 0 ? this.#ring.slice(-n) : []
  }

  follow(listener: LogListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** The entry and its size in characters (message and fields), as the ring and the intake count it. */
  #entry(version: string, source: LogEntry['source'], level: LogLevel, message: string, fields?: Record<string, unknown>): [LogEntry, number] {
    const entry: LogEntry = { time: new Date(this.#clock.now()).toISOString(), level, msg: clip(message), task: this.#task, version, source }
    const kept = fields === undefined ? undefined : boundFields(fields)
    if (kept !== undefined) entry.fields = kept.fields
    return [entry, entry.msg.length + (kept?.chars ?? 0)]
  }

  #drop(version: string, limit: TaskLimitName): TaskLimitName | undefined {
    this.#dropped++
    this.#droppedBy = limit
    this.#dropVersion = version
    if (this.#dropReport !== undefined) return undefined
    this.#dropReport = setTimeout(() => this.#reportDropped(), LOG_DEFAULTS.dropReportMs)
    this.#dropReport.unref()
    return limit
  }

  #reportDropped(): void {
    this.#dropReport = undefined
    const dropped = this.#dropped
    this.#dropped = 0
    this.lifecycle(this.#dropVersion, 'warn', `dropped ${dropped} lines`, { dropped, limit: this.#droppedBy })
  }

  #keep(entry: LogEntry, size: number): void {
    this.#ring.push(entry)
    this.#sizes.push(size)
    this.#ringChars += size
    while (this.#ring.length > LOG_DEFAULTS.capacity || (this.#ringChars > LOG_DEFAULTS.ringChars && this.#ring.length > 1)) {
      this.#ring.shift()
      this.#ringChars -= this.#sizes.shift() ?? 0
    }
    for (const listener of this.#listeners) {
      try {
        listener(entry)
      } catch (err) {
        this.#log.debug({ task: this.#task, err: (err as Error).message }, 'task log follower failed')
      }
    }
  }

  /** Task fields stay nested under `fields` so a task cannot overwrite `task`, `level` or `msg`. */
  #sink(entry: LogEntry): void {
    if (this.#suppressed > 0) {
      this.#log.warn({ task: this.#task, version: entry.version, suppressed: this.#suppressed }, 'task log lines were not written to the daemon log (rate limit)')
      this.#suppressed = 0
    }
    const record = { task: this.#task, version: entry.version, source: entry.source, ...(entry.fields === undefined ? {} : { fields: entry.fields }) }
    this.#log[entry.level](record, entry.msg)
  }

  #takeToken(): boolean {
    const now = this.#clock.now()
    const refill = ((now - this.#refilledAt) / 1000) * LOG_DEFAULTS.sinkLinesPerSecond
    this.#tokens = Math.min(LOG_DEFAULTS.sinkBurst, this.#tokens + refill)
    this.#refilledAt = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}

function clip(message: string): string {
  const text = String(message)
  return text.length <= LOG_DEFAULTS.maxMessageChars ? text : `${text.slice(0, LOG_DEFAULTS.maxMessageChars)}…`
}

/** Keeps fields only when they serialize to a reasonable size; a huge object is replaced by a note. */
function boundFields(fields: Record<string, unknown>): { fields: Record<string, unknown>; chars: number } | undefined {
  let json: string | undefined
  try {
    json = JSON.stringify(fields)
  } catch {
    return { fields: { unserializable: true }, chars: 20 }
  }
  if (json === undefined) return undefined
  return json.length <= LOG_DEFAULTS.maxFieldsChars ? { fields, chars: json.length } : { fields: { truncated: true, chars: json.length }, chars: 30 }
}
