import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { TaskLogEntry } from '../protocol/index.js'
import type { LogLevel } from '../sandbox/index.js'

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
  /** Longest message kept, in characters. */
  maxMessageChars: 2000,
  /** Largest `fields` object kept, as JSON characters. */
  maxFieldsChars: 4000,
  /** Task lines per second written to the daemon log; the ring buffer keeps them all regardless. */
  sinkLinesPerSecond: 50,
  sinkBurst: 200,
})

/**
 * A task's log: a bounded ring buffer with followers, mirrored to the daemon's logger tagged with
 * task and version. Task-authored lines reach the daemon log through a token bucket, because a task
 * logging in a loop must not fill the SD card (greengrass-nucleus #1649); the ring buffer still
 * receives every line.
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

  constructor(task: string, log: Logger, clock: Clock) {
    this.#task = task
    this.#log = log
    this.#clock = clock
    this.#refilledAt = clock.now()
  }

  /** A line the task's code wrote with ctx.log. */
  fromTask(version: string, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    const entry = this.#entry(version, 'task', level, message, fields)
    this.#keep(entry)
    if (this.#takeToken()) this.#sink(entry)
    else this.#suppressed++
  }

  /**
   * Something the service did to the task (installed, replaced, broken, refused a call). Events a
   * task or its traffic can repeat at will (refusals) pass `throttled` so they share the rate limit.
   */
  lifecycle(version: string, level: LogLevel, message: string, fields?: Record<string, unknown>, throttled = false): void {
    const entry = this.#entry(version, 'lifecycle', level, message, fields)
    this.#keep(entry)
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

  #entry(version: string, source: LogEntry['source'], level: LogLevel, message: string, fields?: Record<string, unknown>): LogEntry {
    const entry: LogEntry = { time: new Date(this.#clock.now()).toISOString(), level, msg: clip(message), task: this.#task, version, source }
    const kept = fields === undefined ? undefined : boundFields(fields)
    if (kept !== undefined) entry.fields = kept
    return entry
  }

  #keep(entry: LogEntry): void {
    this.#ring.push(entry)
    if (this.#ring.length > LOG_DEFAULTS.capacity) this.#ring.shift()
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
function boundFields(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  let json: string | undefined
  try {
    json = JSON.stringify(fields)
  } catch {
    return { unserializable: true }
  }
  if (json === undefined) return undefined
  return json.length <= LOG_DEFAULTS.maxFieldsChars ? fields : { truncated: true, chars: json.length }
}
