import { systemClock, type Clock } from '../core/clock.js'
import { ClosedError, InvalidArgumentError } from '../core/errors.js'
import { K, silentLogger, type Logger } from '../core/log.js'
import { migrate, openDatabase, type Db } from '../store/index.js'
import { DropReporter } from './drop-reporter.js'
import { isValidTopicName } from '../protocol/index.js'

/** What to do when a new message does not fit under the caps. */
export type DropPolicy = 'drop-oldest' | 'reject-new'

export interface OutboxOptions {
  /** Cap on the sum of queued topic + payload bytes (the file is larger: see README). */
  maxBytes: number
  maxMessages: number
  /** Messages older than this are dropped (counted as expired) whatever their own TTL. */
  maxAgeMs: number
  dropPolicy: DropPolicy
  /** Failed attempts after which a message moves to the dead-letter table. */
  maxAttempts: number
  /** Largest single message (topic + payload) accepted. */
  maxMessageBytes: number
  /** Dead letters kept; the oldest are pruned beyond this, so poison cannot fill the disk either. */
  maxDeadLetters: number
  /** Shortest spell between two "dropped messages" log lines. */
  dropLogIntervalMs: number
}

/** Sized for a Pi-class board with an SD card: a week offline at a few messages per second. */
export const OUTBOX_DEFAULTS: Readonly<OutboxOptions> = {
  maxBytes: 64 * 1024 * 1024,
  maxMessages: 1_000_000,
  maxAgeMs: 7 * 24 * 3600 * 1000,
  dropPolicy: 'drop-oldest',
  maxAttempts: 10,
  maxMessageBytes: 256 * 1024,
  maxDeadLetters: 10_000,
  dropLogIntervalMs: 10_000,
}

export interface OutboxDeps {
  clock?: Clock
  log?: Logger
}

export interface OutboxOpenOptions extends Partial<OutboxOptions>, OutboxDeps {
  /** 'full' survives power loss; 'normal' survives a crash of the process with fewer fsyncs. */
  synchronous?: 'full' | 'normal'
}

export interface OutboxInput {
  topic: string
  payload: Uint8Array
  /** QoS used upstream: 1 is kept until PUBACK, 0 until written to the socket. */
  qos: 0 | 1
  /** Higher is delivered first; FIFO within one priority. Default 0. */
  priority?: number
  /** Drop the message (counted as expired) if not delivered within this many ms. */
  ttlMs?: number
}

export interface OutboxMessage {
  id: number
  topic: string
  payload: Buffer
  qos: 0 | 1
  priority: number
  /** Failed attempts so far. */
  attempts: number
  enqueuedAt: number
  expiresAt: number
}

export interface DeadLetter extends Omit<OutboxMessage, 'expiresAt'> {
  lastError: string
  deadAt: number
}

export type EnqueueRejection = 'full' | 'too-large' | 'invalid-topic' | 'invalid-message'

export type EnqueueResult = { accepted: true; id: number } | { accepted: false; reason: EnqueueRejection }

/** What became of a nacked message. 'gone': it had already been acked, dropped or expired. */
export type NackOutcome = 'retry' | 'dead-lettered' | 'gone'

export interface OutboxStats {
  queued: number
  /** Topic + payload bytes queued (what maxBytes caps). */
  bytes: number
  /** Age of the oldest queued message; 0 when empty. */
  oldestAgeMs: number
  /** Taken for delivery and not yet acked or nacked. */
  inFlight: number
  /** Since the outbox was created (persisted across restarts). */
  dropped: { full: number; expired: number }
  deadLettered: number
  /** Dead letters currently kept. */
  deadLetters: number
  delivered: number
}

const MIGRATIONS = [
  `CREATE TABLE outbox_messages (
     id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never reused, so a late ack cannot hit a newer message
     priority INTEGER NOT NULL,
     topic TEXT NOT NULL,
     payload BLOB NOT NULL,
     qos INTEGER NOT NULL,
     bytes INTEGER NOT NULL,                -- topic + payload bytes, for the byte cap
     enqueued_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT
   );
   -- Entries are (priority, rowid): 'WHERE priority = ? ORDER BY id' is a range scan both for
   -- delivery (highest priority first) and for eviction (lowest first).
   CREATE INDEX outbox_messages_priority ON outbox_messages (priority);
   CREATE INDEX outbox_messages_expiry ON outbox_messages (expires_at);
   CREATE TABLE outbox_dead_letters (
     id INTEGER PRIMARY KEY,                -- the message's id
     priority INTEGER NOT NULL,
     topic TEXT NOT NULL,
     payload BLOB NOT NULL,
     qos INTEGER NOT NULL,
     enqueued_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL,
     last_error TEXT NOT NULL,
     dead_at INTEGER NOT NULL
   );
   CREATE TABLE outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
   INSERT INTO outbox_counters (name, value) VALUES ('dropped_full', 0), ('dropped_expired', 0), ('dead_lettered', 0), ('delivered', 0);`,
]

interface MessageRow {
  id: number
  priority: number
  topic: string
  payload: Buffer
  qos: number
  enqueued_at: number
  expires_at: number
  attempts: number
}

interface DeadLetterRow extends Omit<MessageRow, 'expires_at'> {
  last_error: string
  dead_at: number
}

/** Counter changes of one transaction; applied to memory only once it commits. */
interface Tally {
  full: number
  expired: number
  deadLettered: number
  delivered: number
  pruned: number
}

const newTally = (): Tally => ({ full: 0, expired: 0, deadLettered: 0, delivered: 0, pruned: 0 })

type Counters = Pick<Tally, 'full' | 'expired' | 'deadLettered' | 'delivered'>

const COUNTER_COLUMNS: ReadonlyArray<[keyof Counters, string]> = [
  ['full', 'dropped_full'], ['expired', 'dropped_expired'], ['deadLettered', 'dead_lettered'], ['delivered', 'delivered'],
]

/** Longest error text kept per message: enough to diagnose, bounded so a chatty error cannot bloat rows. */
const MAX_ERROR_CHARS = 500

const toMessage = (r: MessageRow): OutboxMessage => ({
  id: r.id, topic: r.topic, payload: r.payload, qos: r.qos === 1 ? 1 : 0, priority: r.priority,
  attempts: r.attempts, enqueuedAt: r.enqueued_at, expiresAt: r.expires_at,
})

const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id, topic: r.topic, payload: r.payload, qos: r.qos === 1 ? 1 : 0, priority: r.priority,
  attempts: r.attempts, enqueuedAt: r.enqueued_at, lastError: r.last_error, deadAt: r.dead_at,
})

/** Count and bytes queued per priority, mirrored in memory so caps and stats cost no query. */
class Occupancy {
  readonly #by = new Map<number, { count: number; bytes: number }>()
  #ascending: number[] = []
  count = 0
  bytes = 0

  add(priority: number, bytes: number, count = 1): void {
    const slot = this.#by.get(priority)
    if (slot === undefined) {
      this.#by.set(priority, { count, bytes })
      this.#ascending = [...this.#by.keys()].sort((a, b) => a - b)
    } else {
      slot.count += count
      slot.bytes += bytes
    }
    this.count += count
    this.bytes += bytes
  }

  remove(priority: number, bytes: number, count = 1): void {
    const slot = this.#by.get(priority)
    if (slot === undefined) return
    slot.count -= count
    slot.bytes -= bytes
    this.count -= count
    this.bytes -= bytes
    if (slot.count <= 0) {
      this.#by.delete(priority)
      this.#ascending = this.#ascending.filter((p) => p !== priority)
    }
  }

  clear(): void {
    this.#by.clear()
    this.#ascending = []
    this.count = 0
    this.bytes = 0
  }

  /** Priorities with queued messages, lowest first. */
  ascending(): readonly number[] {
    return this.#ascending
  }

  /** Highest first: the delivery order. */
  descending(): number[] {
    return [...this.#ascending].reverse()
  }
}

type Job = { msg: OutboxInput; resolve(r: EnqueueResult): void; reject(err: unknown): void }

/**
 * Durable store-and-forward queue for messages bound to the cloud, in SQLite.
 *
 * Every accepted message is committed before `enqueue` returns. Delivery order is priority
 * (highest first), then FIFO. A deliverer `take`s messages (leased in memory, so a restart simply
 * hands them out again: at-least-once), then `ack`s them once the cloud confirmed or `nack`s them;
 * after `maxAttempts` nacks a message moves to the dead-letter table so it cannot block the rest.
 */
export class Outbox {
  readonly #db: Db
  readonly #o: OutboxOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #reporter: DropReporter
  readonly #occupancy = new Occupancy()
  /** Leased id -> its priority. */
  readonly #leased = new Map<number, number>()
  /**
   * Per priority, the last id `take` handed out: the next take reads on from there instead of
   * re-reading and skipping every leased message. Released and retried messages pull it back.
   */
  readonly #cursor = new Map<number, number>()
  readonly #listeners = new Set<() => void>()
  readonly #counters: Counters = { full: 0, expired: 0, deadLettered: 0, delivered: 0 }
  readonly #s
  #deadCount = 0
  /** Earliest expires_at in the table: sweeps cost nothing until then. */
  #nextExpiry = Infinity
  #pending: Job[] = []
  #scheduled = false
  #closed = false
  #ownsDb = false

  constructor(db: Db, opts: Partial<OutboxOptions> & OutboxDeps = {}) {
    const { clock, log, ...limits } = opts
    this.#o = validateOptions({ ...OUTBOX_DEFAULTS, ...definedOnly(limits) })
    this.#clock = clock ?? systemClock
    this.#log = log ?? silentLogger()
    this.#reporter = new DropReporter(this.#log, this.#o.dropLogIntervalMs)
    migrate(db, 'outbox', MIGRATIONS)
    this.#db = db
    this.#s = prepare(db)
    this.#loadState()
    this.#write((t) => {
      this.#s.capAge.run(this.#o.maxAgeMs, this.#o.maxAgeMs)
      this.#nextExpiry = -Infinity
      this.#sweepExpired(this.#clock.now(), t)
    })
  }

  /** Opens (or creates) an outbox in its own SQLite file; `close()` closes the file. */
  static open(file: string, opts: OutboxOpenOptions = {}): Outbox {
    const db = openDatabase(file, { synchronous: opts.synchronous ?? 'full' })
    // A burst can grow the WAL far beyond what stays queued; this truncates it after checkpoints.
    db.pragma('journal_size_limit = 4194304')
    try {
      const outbox = new Outbox(db, opts)
      outbox.#ownsDb = true
      return outbox
    } catch (err) {
      db.close()
      throw err
    }
  }

  /** Adds one message, committed (one transaction) before it returns. */
  enqueue(msg: OutboxInput): EnqueueResult {
    const [result] = this.enqueueMany([msg])
    return result ?? { accepted: false, reason: 'invalid-message' }
  }

  /** Adds messages in order in one transaction (one fsync for the whole burst). */
  enqueueMany(msgs: readonly OutboxInput[]): EnqueueResult[] {
    const now = this.#clock.now()
    const results = this.#write((t) => {
      this.#sweepExpired(now, t)
      return msgs.map((msg) => this.#insert(msg, now, t))
    })
    if (results.some((r) => r.accepted)) this.#notify()
    return results
  }

  /**
   * Group commit: messages submitted in the same event-loop turn share one transaction, and each
   * promise resolves once its message is durable (or rejected by the caps).
   */
  enqueueAsync(msg: OutboxInput): Promise<EnqueueResult> {
    if (this.#closed) return Promise.reject(new ClosedError('the outbox is closed'))
    return new Promise((resolve, reject) => {
      this.#pending.push({ msg, resolve, reject })
      if (this.#scheduled) return
      this.#scheduled = true
      setImmediate(() => this.#flushPending())
    })
  }

  /** The next `n` messages in delivery order, taken or not; for inspection. */
  peek(n: number): OutboxMessage[] {
    this.#assertOpen()
    this.#sweepIfDue()
    const ids: number[] = []
    for (const priority of this.#occupancy.descending()) {
      if (ids.length >= n) break
      ids.push(...this.#s.headAfter.all(priority, 0, n - ids.length))
    }
    return ids.flatMap((id) => this.#row(id))
  }

  /**
   * The next `n` messages in delivery order that are not already taken, now leased to the caller
   * until it acks, nacks or releases them. Leases live in memory only.
   */
  take(n: number): OutboxMessage[] {
    this.#assertOpen()
    this.#sweepIfDue()
    const messages = this.#unleasedIds(n).flatMap((id) => this.#row(id))
    for (const m of messages) {
      this.#leased.set(m.id, m.priority)
      this.#cursor.set(m.priority, Math.max(this.#cursor.get(m.priority) ?? 0, m.id))
    }
    return messages
  }

  /** Delivered: removes the messages; returns how many were still queued. */
  ack(ids: readonly number[]): number {
    if (ids.length === 0) return 0
    for (const id of ids) this.#leased.delete(id)
    return this.#write((t) => {
      for (const id of ids) {
        const row = this.#s.remove.get(id)
        if (row === undefined) continue
        this.#occupancy.remove(row.priority, row.bytes)
        t.delivered++
      }
      return t.delivered
    })
  }

  /** A failed attempt: counted, and after `maxAttempts` the message becomes a dead letter. */
  nack(id: number, error: string): NackOutcome {
    this.#leased.delete(id)
    return this.#write((t) => {
      const row = this.#s.bump.get(error.slice(0, MAX_ERROR_CHARS), id)
      if (row === undefined) return 'gone'
      if (row.attempts < this.#o.maxAttempts) {
        this.#rewind(row.priority, id)
        return 'retry'
      }
      this.#toDeadLetter(id, row.priority, row.bytes, t)
      return 'dead-lettered'
    })
  }

  /** Gives leased messages back without counting an attempt (the link went down, not the message). */
  release(ids?: readonly number[]): void {
    if (ids === undefined) {
      this.#leased.clear()
      this.#cursor.clear()
      return
    }
    for (const id of ids) {
      const priority = this.#leased.get(id)
      if (priority === undefined) continue
      this.#leased.delete(id)
      this.#rewind(priority, id)
    }
  }

  /** Dead letters in id order, after `afterId`; for operators and the API. */
  deadLetters(limit = 100, afterId = 0): DeadLetter[] {
    this.#assertOpen()
    return this.#s.deadPage.all(afterId, limit).map(toDeadLetter)
  }

  /** Moves dead letters back to the queue as new messages (attempts reset); returns how many. */
  requeueDeadLetters(ids: readonly number[]): number {
    const now = this.#clock.now()
    const requeued = this.#write((t) => ids.filter((id) => this.#requeue(id, now, t)).length)
    if (requeued > 0) this.#notify()
    return requeued
  }

  /** Deletes every dead letter; returns how many. */
  purgeDeadLetters(): number {
    const n = this.#write(() => this.#s.purgeDead.run().changes)
    this.#deadCount = 0
    return n
  }

  stats(): OutboxStats {
    this.#sweepIfDue()
    return {
      queued: this.#occupancy.count,
      bytes: this.#occupancy.bytes,
      oldestAgeMs: this.#oldestAgeMs(),
      inFlight: this.#leased.size,
      dropped: { full: this.#counters.full, expired: this.#counters.expired },
      deadLettered: this.#counters.deadLettered,
      deadLetters: this.#deadCount,
      delivered: this.#counters.delivered,
    }
  }

  /** Calls `listener` after each commit that added messages; returns the unsubscribe function. */
  onAvailable(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Commits what `enqueueAsync` still holds, logs pending drop counts; closes the file if it owns it. */
  close(): void {
    if (this.#closed) return
    this.#flushPending()
    this.#closed = true
    this.#reporter.close()
    this.#listeners.clear()
    if (this.#ownsDb) this.#db.close()
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the outbox is closed')
  }

  #flushPending(): void {
    this.#scheduled = false
    const jobs = this.#pending
    this.#pending = []
    if (jobs.length === 0) return
    try {
      const results = this.enqueueMany(jobs.map((j) => j.msg))
      jobs.forEach((job, i) => job.resolve(results[i] ?? { accepted: false, reason: 'invalid-message' }))
    } catch (err) {
      for (const job of jobs) job.reject(err)
    }
  }

  /**
   * Runs `fn` in one transaction with a fresh tally, persists the counters in the same
   * transaction, and applies the tally to memory only after the commit. On failure the in-memory
   * mirror is rebuilt from the file, which rolled back.
   */
  #write<T>(fn: (t: Tally) => T): T {
    this.#assertOpen()
    const t = newTally()
    let result: T
    try {
      result = this.#db.transaction(() => {
        const r = fn(t)
        for (const [key, name] of COUNTER_COLUMNS) if (t[key] > 0) this.#s.count.run(t[key], name)
        return r
      })()
    } catch (err) {
      this.#loadState()
      throw err
    }
    for (const [key] of COUNTER_COLUMNS) this.#counters[key] += t[key]
    this.#reporter.record({ full: t.full, expired: t.expired, 'dead-lettered': t.deadLettered, 'dead-letters-pruned': t.pruned })
    return result
  }

  #insert(msg: OutboxInput, now: number, t: Tally): EnqueueResult {
    const invalid = validateInput(msg)
    if (invalid !== null) return { accepted: false, reason: invalid }
    const bytes = Buffer.byteLength(msg.topic, 'utf8') + msg.payload.byteLength
    if (bytes > this.#o.maxMessageBytes || bytes > this.#o.maxBytes) return { accepted: false, reason: 'too-large' }
    const priority = msg.priority ?? 0
    if (!this.#makeRoom(priority, bytes, t)) {
      t.full++
      return { accepted: false, reason: 'full' }
    }
    const expiresAt = now + Math.min(msg.ttlMs ?? this.#o.maxAgeMs, this.#o.maxAgeMs)
    const payload = Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength)
    const id = Number(this.#s.insert.run(priority, msg.topic, payload, msg.qos, bytes, now, expiresAt).lastInsertRowid)
    this.#occupancy.add(priority, bytes)
    this.#nextExpiry = Math.min(this.#nextExpiry, expiresAt)
    return { accepted: true, id }
  }

  #fits(bytes: number): boolean {
    return this.#occupancy.count + 1 <= this.#o.maxMessages && this.#occupancy.bytes + bytes <= this.#o.maxBytes
  }

  /**
   * Under 'drop-oldest', evicts the oldest messages of the lowest priority until `bytes` fit, but
   * never a message of higher priority than the newcomer: then the newcomer is the one dropped.
   */
  #makeRoom(priority: number, bytes: number, t: Tally): boolean {
    while (!this.#fits(bytes)) {
      if (this.#o.dropPolicy === 'reject-new') return false
      const lowest = this.#occupancy.ascending()[0]
      if (lowest === undefined || lowest > priority) return false
      const victim = this.#s.oldestOf.get(lowest)
      if (victim === undefined) return false
      this.#s.remove.get(victim.id)
      this.#leased.delete(victim.id)
      this.#occupancy.remove(lowest, victim.bytes)
      t.full++
    }
    return true
  }

  #sweepIfDue(): void {
    const now = this.#clock.now()
    if (now >= this.#nextExpiry) this.#write((t) => this.#sweepExpired(now, t))
  }

  /** Deletes every message whose time is up, counting them; cheap when nothing is due. */
  #sweepExpired(now: number, t: Tally): void {
    if (now < this.#nextExpiry) return
    for (const g of this.#s.expiredByPriority.all(now)) {
      this.#occupancy.remove(g.priority, g.bytes, g.n)
      t.expired += g.n
    }
    if (t.expired > 0) this.#s.deleteExpired.run(now)
    this.#nextExpiry = this.#s.nextExpiry.get() ?? Infinity
  }

  /** Ids of the next `n` messages by priority then id that are not leased, reading on from each cursor. */
  #unleasedIds(n: number): number[] {
    const ids: number[] = []
    for (const priority of this.#occupancy.descending()) {
      let after = this.#cursor.get(priority) ?? 0
      while (ids.length < n) {
        const need = n - ids.length
        const chunk = this.#s.headAfter.all(priority, after, need)
        for (const id of chunk) if (!this.#leased.has(id)) ids.push(id)
        const last = chunk.at(-1)
        if (chunk.length < need || last === undefined) break
        after = last
      }
      if (ids.length >= n) break
    }
    return ids
  }

  /** A message back in the pool: the next take must read from before it again. */
  #rewind(priority: number, id: number): void {
    const cursor = this.#cursor.get(priority)
    if (cursor !== undefined && cursor >= id) this.#cursor.set(priority, id - 1)
  }

  #row(id: number): OutboxMessage[] {
    const row = this.#s.get.get(id)
    return row === undefined ? [] : [toMessage(row)]
  }

  #toDeadLetter(id: number, priority: number, bytes: number, t: Tally): void {
    this.#s.copyToDead.run(this.#clock.now(), id)
    this.#s.remove.get(id)
    this.#occupancy.remove(priority, bytes)
    t.deadLettered++
    this.#deadCount++
    const excess = this.#deadCount - this.#o.maxDeadLetters
    if (excess <= 0) return
    t.pruned += this.#s.pruneDead.run(excess).changes
    this.#deadCount = this.#o.maxDeadLetters
  }

  #requeue(id: number, now: number, t: Tally): boolean {
    const row = this.#s.deadGet.get(id)
    if (row === undefined) return false
    const result = this.#insert({ topic: row.topic, payload: row.payload, qos: row.qos === 1 ? 1 : 0, priority: row.priority }, now, t)
    if (!result.accepted) return false
    this.#s.deleteDead.run(id)
    this.#deadCount--
    return true
  }

  #oldestAgeMs(): number {
    let oldest = Infinity
    for (const priority of this.#occupancy.ascending()) {
      oldest = Math.min(oldest, this.#s.headEnqueuedAt.get(priority) ?? Infinity)
    }
    return oldest === Infinity ? 0 : Math.max(0, this.#clock.now() - oldest)
  }

  /** Rebuilds the in-memory mirror (occupancy, counters, dead-letter count) from the file. */
  #loadState(): void {
    this.#occupancy.clear()
    for (const g of this.#s.occupancy.all()) this.#occupancy.add(g.priority, g.bytes, g.n)
    for (const row of this.#s.counters.all()) {
      const entry = COUNTER_COLUMNS.find(([, name]) => name === row.name)
      if (entry !== undefined) this.#counters[entry[0]] = row.value
    }
    this.#deadCount = this.#s.deadCount.get() ?? 0
    this.#nextExpiry = this.#s.nextExpiry.get() ?? Infinity
  }

  /** After the commit: a failing listener must not make a durable enqueue look failed. */
  #notify(): void {
    for (const listener of this.#listeners) {
      try {
        listener()
      } catch (err) {
        this.#log.error({ [K.err]: (err as Error).message }, 'outbox listener failed')
      }
    }
  }
}

function prepare(db: Db) {
  type Group = { priority: number; n: number; bytes: number }
  return {
    insert: db.prepare<[number, string, Buffer, number, number, number, number]>(
      'INSERT INTO outbox_messages (priority, topic, payload, qos, bytes, enqueued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    get: db.prepare<[number], MessageRow>('SELECT id, priority, topic, payload, qos, enqueued_at, expires_at, attempts FROM outbox_messages WHERE id = ?'),
    headAfter: db.prepare<[number, number, number], number>('SELECT id FROM outbox_messages WHERE priority = ? AND id > ? ORDER BY id LIMIT ?').pluck(),
    headEnqueuedAt: db.prepare<[number], number>('SELECT enqueued_at FROM outbox_messages WHERE priority = ? ORDER BY id LIMIT 1').pluck(),
    oldestOf: db.prepare<[number], { id: number; bytes: number }>('SELECT id, bytes FROM outbox_messages WHERE priority = ? ORDER BY id LIMIT 1'),
    remove: db.prepare<[number], { priority: number; bytes: number }>('DELETE FROM outbox_messages WHERE id = ? RETURNING priority, bytes'),
    bump: db.prepare<[string, number], { attempts: number; priority: number; bytes: number }>(
      'UPDATE outbox_messages SET attempts = attempts + 1, last_error = ? WHERE id = ? RETURNING attempts, priority, bytes'),
    expiredByPriority: db.prepare<[number], Group>(
      'SELECT priority, COUNT(*) AS n, SUM(bytes) AS bytes FROM outbox_messages WHERE expires_at <= ? GROUP BY priority'),
    deleteExpired: db.prepare<[number]>('DELETE FROM outbox_messages WHERE expires_at <= ?'),
    nextExpiry: db.prepare<[], number | null>('SELECT MIN(expires_at) FROM outbox_messages').pluck(),
    /** When maxAgeMs was lowered since the messages were queued, their deadline follows it. */
    capAge: db.prepare<[number, number]>('UPDATE outbox_messages SET expires_at = enqueued_at + ? WHERE expires_at > enqueued_at + ?'),
    occupancy: db.prepare<[], Group>('SELECT priority, COUNT(*) AS n, SUM(bytes) AS bytes FROM outbox_messages GROUP BY priority'),
    counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM outbox_counters'),
    count: db.prepare<[number, string]>('UPDATE outbox_counters SET value = value + ? WHERE name = ?'),
    copyToDead: db.prepare<[number, number]>(`INSERT INTO outbox_dead_letters (id, priority, topic, payload, qos, enqueued_at, attempts, last_error, dead_at)
      SELECT id, priority, topic, payload, qos, enqueued_at, attempts, COALESCE(last_error, ''), ? FROM outbox_messages WHERE id = ?`),
    deadCount: db.prepare<[], number>('SELECT COUNT(*) FROM outbox_dead_letters').pluck(),
    deadPage: db.prepare<[number, number], DeadLetterRow>(
      'SELECT id, priority, topic, payload, qos, enqueued_at, attempts, last_error, dead_at FROM outbox_dead_letters WHERE id > ? ORDER BY id LIMIT ?'),
    deadGet: db.prepare<[number], DeadLetterRow>(
      'SELECT id, priority, topic, payload, qos, enqueued_at, attempts, last_error, dead_at FROM outbox_dead_letters WHERE id = ?'),
    deleteDead: db.prepare<[number]>('DELETE FROM outbox_dead_letters WHERE id = ?'),
    pruneDead: db.prepare<[number]>('DELETE FROM outbox_dead_letters WHERE id IN (SELECT id FROM outbox_dead_letters ORDER BY id LIMIT ?)'),
    purgeDead: db.prepare<[]>('DELETE FROM outbox_dead_letters'),
  }
}

/** Why a message cannot be queued at all, or null; the caps are checked separately. */
function validateInput(msg: OutboxInput): EnqueueRejection | null {
  if (typeof msg.topic !== 'string' || !isValidTopicName(msg.topic)) return 'invalid-topic'
  if (!(msg.payload instanceof Uint8Array) || (msg.qos !== 0 && msg.qos !== 1)) return 'invalid-message'
  if (msg.priority !== undefined && !Number.isSafeInteger(msg.priority)) return 'invalid-message'
  if (msg.ttlMs !== undefined && !(Number.isFinite(msg.ttlMs) && msg.ttlMs > 0)) return 'invalid-message'
  return null
}

function validateOptions(o: OutboxOptions): OutboxOptions {
  const positive: Array<keyof OutboxOptions> = ['maxBytes', 'maxMessages', 'maxAgeMs', 'maxAttempts', 'maxMessageBytes', 'maxDeadLetters']
  for (const key of positive) {
    const v = o[key]
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 1) throw new InvalidArgumentError(`outbox option ${key} must be a number >= 1, got ${String(v)}`)
  }
  if (o.dropPolicy !== 'drop-oldest' && o.dropPolicy !== 'reject-new') {
    throw new InvalidArgumentError(`outbox option dropPolicy must be 'drop-oldest' or 'reject-new', got ${String(o.dropPolicy)}`)
  }
  if (!(o.dropLogIntervalMs >= 0)) throw new InvalidArgumentError('outbox option dropLogIntervalMs must be >= 0')
  return o
}

/** Options left undefined fall back to the defaults instead of overriding them. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
