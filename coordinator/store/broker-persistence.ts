import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Encoder } from 'cbor-x'
import type { Db } from './db.js'
import { migrate } from './db.js'

/** A packet as aedes hands it over. Fields this store does not interpret are kept verbatim. */
export interface BrokerPacket {
  cmd?: string
  topic?: string
  payload?: Buffer | string
  qos?: number
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  [field: string]: unknown
}

export interface BrokerClient {
  id: string
}

export interface BrokerSubscription {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

export interface OfflineSubscription extends BrokerSubscription {
  clientId: string
}

/** What the persistence needs of the aedes instance: its id and the counter it stamps on packets. */
export interface BrokerRef {
  id: string
  counter: number
}

/**
 * `owner` is the broker's record of the client that left the will (its identity and policies at
 * CONNECT), stored in the row's meta with the other fields: after a restart the will is authorized
 * as that owner before it is published.
 */
type WillPacket = BrokerPacket & { brokerId: string; clientId: string; owner?: unknown }

/** The in-memory persistence of aedes-persistence 11 (asyncPersistence.js), as far as it is used here. */
interface MemoryPersistence {
  setup(broker: BrokerRef): Promise<void>
  storeRetained(packet: BrokerPacket): Promise<void>
  createRetainedStream(pattern: string): Readable
  createRetainedStreamCombi(patterns: string[]): Readable
  addSubscriptions(client: BrokerClient, subs: BrokerSubscription[]): Promise<void>
  removeSubscriptions(client: BrokerClient, topics: string[]): Promise<void>
  subscriptionsByClient(client: BrokerClient): Promise<BrokerSubscription[]>
  subscriptionsByTopic(topic: string): Promise<OfflineSubscription[]>
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>
  cleanSubscriptions(client: BrokerClient): Promise<void>
  incomingStorePacket(client: BrokerClient, packet: BrokerPacket): Promise<void>
  incomingGetPacket(client: BrokerClient, packet: BrokerPacket): Promise<BrokerPacket>
  incomingDelPacket(client: BrokerClient, packet: BrokerPacket): Promise<void>
  cleanIncoming(client: BrokerClient): Promise<void>
  getClientList(topic: string): Readable
  destroy(): Promise<void>
}

interface MemoryPersistenceModule {
  new (): MemoryPersistence
  /** aedes-packet's constructor, re-exported: normalises a packet the way aedes queues it. */
  Packet: new (original: BrokerPacket) => BrokerPacket
}

// aedes-persistence is CommonJS without types for this entry point.
const MemoryPersistence = createRequire(import.meta.url)('aedes-persistence/asyncPersistence.js') as MemoryPersistenceModule

const MIGRATIONS = [
  `CREATE TABLE broker_retained (
     topic TEXT PRIMARY KEY,
     payload BLOB,                -- Buffer payloads; NULL when the packet has none or carries it in meta
     meta BLOB NOT NULL           -- CBOR of every other packet field
   );
   CREATE TABLE broker_subscriptions (   -- only clean=false sessions
     client_id TEXT NOT NULL,
     topic TEXT NOT NULL,
     qos INTEGER NOT NULL,
     rh INTEGER,
     rap INTEGER,
     nl INTEGER,
     subscription_identifier INTEGER,
     PRIMARY KEY (client_id, topic)
   ) WITHOUT ROWID;
   CREATE TABLE broker_outgoing (
     seq INTEGER PRIMARY KEY,     -- queue order, and the handle the in-memory queue keeps per entry
     client_id TEXT NOT NULL,
     payload BLOB,
     meta BLOB NOT NULL
   );
   CREATE TABLE broker_incoming (  -- inbound QoS 2 awaiting PUBREL
     client_id TEXT NOT NULL,
     message_id INTEGER NOT NULL,
     payload BLOB,
     meta BLOB NOT NULL,
     PRIMARY KEY (client_id, message_id)
   );
   CREATE TABLE broker_wills (
     client_id TEXT PRIMARY KEY,
     payload BLOB,
     meta BLOB NOT NULL
   );`,
]

interface EncodedPacket {
  payload: Buffer | null
  meta: Buffer
}

interface OutgoingEntry {
  readonly seq: number
  packet: BrokerPacket
}

// Records off: their key tables would have to be persisted alongside the rows.
const cbor = new Encoder({ useRecords: false })

/** Buffer payloads go to a BLOB column; the rest (a string payload included) to CBOR. */
function encodePacket(packet: BrokerPacket): EncodedPacket {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(packet)) {
    // aedes attaches callbacks (writeCallback) to packets in flight; they are not state.
    if (typeof value !== 'function') fields[key] = value
  }
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : null
  if (payload !== null) delete fields.payload
  return { payload, meta: cbor.encode(fields) }
}

function decodePacket(row: EncodedPacket): BrokerPacket {
  const packet = cbor.decode(row.meta) as BrokerPacket
  if (row.payload !== null) packet.payload = row.payload
  return packet
}

function optionalBoolean(value: boolean | undefined): number | null {
  return value === undefined ? null : Number(value)
}

interface SubscriptionRow {
  client_id: string
  topic: string
  qos: number
  rh: number | null
  rap: number | null
  nl: number | null
  subscription_identifier: number | null
}

function subscriptionFromRow(row: SubscriptionRow): BrokerSubscription {
  const sub: BrokerSubscription = {
    topic: row.topic,
    qos: row.qos,
    rh: row.rh ?? undefined,
    rap: row.rap === null ? undefined : row.rap === 1,
    nl: row.nl === null ? undefined : row.nl === 1,
  }
  // Present only when set, like aedes-persistence does, so v3 subscriptions keep their shape.
  if (row.subscription_identifier !== null) sub.subscriptionIdentifier = row.subscription_identifier
  return sub
}

function prepareStatements(db: Db) {
  return {
    putRetained: db.prepare<[string, Buffer | null, Buffer]>(
      `INSERT INTO broker_retained (topic, payload, meta) VALUES (?, ?, ?)
       ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, meta = excluded.meta`),
    delRetained: db.prepare<[string]>('DELETE FROM broker_retained WHERE topic = ?'),
    allRetained: db.prepare<[], EncodedPacket>('SELECT payload, meta FROM broker_retained'),
    putSubscription: db.prepare<[string, string, number, number | null, number | null, number | null, number | null]>(
      `INSERT INTO broker_subscriptions (client_id, topic, qos, rh, rap, nl, subscription_identifier)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, rh = excluded.rh, rap = excluded.rap,
         nl = excluded.nl, subscription_identifier = excluded.subscription_identifier`),
    delSubscription: db.prepare<[string, string]>('DELETE FROM broker_subscriptions WHERE client_id = ? AND topic = ?'),
    delClientSubscriptions: db.prepare<[string]>('DELETE FROM broker_subscriptions WHERE client_id = ?'),
    allSubscriptions: db.prepare<[], SubscriptionRow>('SELECT * FROM broker_subscriptions ORDER BY client_id'),
    addOutgoing: db.prepare<[string, Buffer | null, Buffer]>(
      'INSERT INTO broker_outgoing (client_id, payload, meta) VALUES (?, ?, ?)'),
    setOutgoingMeta: db.prepare<[Buffer, number]>('UPDATE broker_outgoing SET meta = ? WHERE seq = ?'),
    setOutgoing: db.prepare<[Buffer | null, Buffer, number]>('UPDATE broker_outgoing SET payload = ?, meta = ? WHERE seq = ?'),
    delOutgoing: db.prepare<[number]>('DELETE FROM broker_outgoing WHERE seq = ?'),
    allOutgoing: db.prepare<[], EncodedPacket & { seq: number; client_id: string }>(
      'SELECT seq, client_id, payload, meta FROM broker_outgoing ORDER BY seq'),
    putIncoming: db.prepare<[string, number, Buffer | null, Buffer]>(
      `INSERT INTO broker_incoming (client_id, message_id, payload, meta) VALUES (?, ?, ?, ?)
       ON CONFLICT (client_id, message_id) DO UPDATE SET payload = excluded.payload, meta = excluded.meta`),
    delIncoming: db.prepare<[string, number]>('DELETE FROM broker_incoming WHERE client_id = ? AND message_id = ?'),
    delClientIncoming: db.prepare<[string]>('DELETE FROM broker_incoming WHERE client_id = ?'),
    allIncoming: db.prepare<[], EncodedPacket & { client_id: string }>('SELECT client_id, payload, meta FROM broker_incoming'),
    putWill: db.prepare<[string, Buffer | null, Buffer]>(
      `INSERT INTO broker_wills (client_id, payload, meta) VALUES (?, ?, ?)
       ON CONFLICT (client_id) DO UPDATE SET payload = excluded.payload, meta = excluded.meta`),
    delWill: db.prepare<[string]>('DELETE FROM broker_wills WHERE client_id = ?'),
    allWills: db.prepare<[], EncodedPacket>('SELECT payload, meta FROM broker_wills'),
  }
}

type Statements = ReturnType<typeof prepareStatements>

export interface BrokerPersistenceOptions {
  /**
   * QoS 1/2 messages kept per session (queued while offline plus sent and not yet acknowledged);
   * a message for a full session is dropped, so what was already accepted is kept. Unbounded when absent.
   */
  maxQueuedPerClient?: number
  /** Called for each dropped message with the session's drop count since its queue was last empty. */
  onQueueFull?: (clientId: string, dropped: number) => void
}

/**
 * aedes 1.x persistence (the async interface aedes calls without callbacks) backed by SQLite.
 * Reads and topic matching are served from aedes-persistence's in-memory store; every mutation is
 * written to SQLite synchronously first, so it is durable (kill -9 included) before the promise
 * resolves. The tables are loaded into memory by setup(), which aedes awaits in listen().
 * The outgoing queue and wills are kept here rather than in the memory store: queue entries need
 * their row handle for messageId updates, and restored wills must keep the brokerId that wrote them.
 */
export class SqliteBrokerPersistence {
  readonly #sql: Statements
  readonly #memory = new MemoryPersistence()
  readonly #outgoing = new Map<string, OutgoingEntry[]>()
  readonly #wills = new Map<string, WillPacket>()
  // One transaction, hence one commit, per call that writes several rows.
  readonly #putSubscriptions
  readonly #delSubscriptions
  readonly #enqueueAll
  readonly #maxQueued: number
  readonly #onQueueFull: ((clientId: string, dropped: number) => void) | undefined
  readonly #dropped = new Map<string, number>()
  #broker: BrokerRef | undefined

  constructor(db: Db, opts: BrokerPersistenceOptions = {}) {
    this.#maxQueued = opts.maxQueuedPerClient ?? Infinity
    this.#onQueueFull = opts.onQueueFull
    migrate(db, 'broker', MIGRATIONS)
    this.#sql = prepareStatements(db)
    this.#putSubscriptions = db.transaction((clientId: string, subs: BrokerSubscription[]) => {
      for (const sub of subs) {
        this.#sql.putSubscription.run(clientId, sub.topic, sub.qos, sub.rh ?? null, optionalBoolean(sub.rap),
          optionalBoolean(sub.nl), sub.subscriptionIdentifier ?? null)
      }
    })
    this.#delSubscriptions = db.transaction((clientId: string, topics: string[]) => {
      for (const topic of topics) this.#sql.delSubscription.run(clientId, topic)
    })
    this.#enqueueAll = db.transaction((subs: { clientId: string }[], packet: BrokerPacket) => {
      for (const sub of subs) this.#enqueue(sub.clientId, packet)
    })
  }

  /** The aedes instance passed to setup() (aedes-persistence's abstract tests read it). */
  get broker(): BrokerRef | undefined {
    return this.#broker
  }

  // Must stay an `async` method: aedes checks setup.constructor.name === 'AsyncFunction'.
  async setup(broker: BrokerRef): Promise<void> {
    if (this.#broker !== undefined) throw new Error('broker persistence is already set up')
    this.#broker = broker
    await this.#memory.setup(broker)
    await this.#loadRetained()
    await this.#loadSubscriptions()
    await this.#loadIncoming()
    this.#loadWills()
    this.#loadOutgoing(broker)
  }

  async storeRetained(packet: BrokerPacket): Promise<void> {
    const topic = packet.topic ?? ''
    if (packet.payload === undefined || packet.payload.length === 0) {
      this.#sql.delRetained.run(topic)
    } else {
      const { payload, meta } = encodePacket(packet)
      this.#sql.putRetained.run(topic, payload, meta)
    }
    await this.#memory.storeRetained(packet)
  }

  createRetainedStream(pattern: string): Readable {
    return this.#memory.createRetainedStream(pattern)
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.#memory.createRetainedStreamCombi(patterns)
  }

  /** aedes calls this only for clean=false sessions, which is exactly what has to survive a restart. */
  async addSubscriptions(client: BrokerClient, subs: BrokerSubscription[]): Promise<void> {
    this.#putSubscriptions(client.id, subs)
    await this.#memory.addSubscriptions(client, subs)
  }

  async removeSubscriptions(client: BrokerClient, topics: string[]): Promise<void> {
    this.#delSubscriptions(client.id, topics)
    await this.#memory.removeSubscriptions(client, topics)
  }

  subscriptionsByClient(client: BrokerClient): Promise<BrokerSubscription[]> {
    return this.#memory.subscriptionsByClient(client)
  }

  subscriptionsByTopic(topic: string): Promise<OfflineSubscription[]> {
    return this.#memory.subscriptionsByTopic(topic)
  }

  countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return this.#memory.countOffline()
  }

  async cleanSubscriptions(client: BrokerClient): Promise<void> {
    this.#sql.delClientSubscriptions.run(client.id)
    await this.#memory.cleanSubscriptions(client)
  }

  getClientList(topic: string): Readable {
    return this.#memory.getClientList(topic)
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: BrokerPacket): Promise<void> {
    this.#enqueue(sub.clientId, packet)
  }

  /** All the subscribers a publish fans out to, in one commit. */
  async outgoingEnqueueCombi(subs: { clientId: string }[], packet: BrokerPacket): Promise<void> {
    // aedes calls this for every QoS 1 publish, usually with no offline subscriber: skip the transaction.
    if (subs.length === 0) return
    this.#enqueueAll(subs, packet)
  }

  /**
   * Same matching as aedes-persistence: the entry with this packet's brokerId and brokerCounter gets
   * its messageId; otherwise an entry from another broker with the same messageId is replaced (that
   * is how a PUBREL takes the place of its PUBLISH).
   */
  async outgoingUpdate(client: BrokerClient, packet: BrokerPacket): Promise<void> {
    for (const entry of this.#outgoing.get(client.id) ?? []) {
      if (entry.packet.brokerId === packet.brokerId) {
        // Same broker, other counter: messageIds wrap at 65535, so keep looking.
        if (entry.packet.brokerCounter !== packet.brokerCounter) continue
        this.#sql.setOutgoingMeta.run(encodePacket({ ...entry.packet, messageId: packet.messageId }).meta, entry.seq)
        entry.packet.messageId = packet.messageId
        return
      }
      if (entry.packet.messageId === packet.messageId) {
        const { payload, meta } = encodePacket(packet)
        this.#sql.setOutgoing.run(payload, meta, entry.seq)
        entry.packet = packet
        return
      }
    }
    // A message dropped for a full session still goes to the client if it is online, unstored.
    if (this.#dropped.has(client.id)) return
    throw new Error('no such packet')
  }

  /** Removes the first queued packet with this messageId (a PUBACK will do) and returns it. */
  async outgoingClearMessageId(client: BrokerClient, packet: Pick<BrokerPacket, 'messageId'>): Promise<BrokerPacket | undefined> {
    const queue = this.#outgoing.get(client.id)
    const index = queue?.findIndex((entry) => entry.packet.messageId === packet.messageId) ?? -1
    const entry = queue?.[index]
    if (queue === undefined || entry === undefined) return undefined
    this.#sql.delOutgoing.run(entry.seq)
    queue.splice(index, 1)
    if (queue.length === 0) {
      this.#outgoing.delete(client.id)
      this.#dropped.delete(client.id)
    }
    return entry.packet
  }

  outgoingStream(client: BrokerClient): Readable {
    // A snapshot: aedes clears entries while it is still reading the stream.
    return Readable.from((this.#outgoing.get(client.id) ?? []).map((entry) => entry.packet))
  }

  async incomingStorePacket(client: BrokerClient, packet: BrokerPacket): Promise<void> {
    const { payload, meta } = encodePacket(packet)
    this.#sql.putIncoming.run(client.id, packet.messageId ?? 0, payload, meta)
    await this.#memory.incomingStorePacket(client, packet)
  }

  incomingGetPacket(client: BrokerClient, packet: BrokerPacket): Promise<BrokerPacket> {
    return this.#memory.incomingGetPacket(client, packet)
  }

  async incomingDelPacket(client: BrokerClient, packet: BrokerPacket): Promise<void> {
    this.#sql.delIncoming.run(client.id, packet.messageId ?? 0)
    await this.#memory.incomingDelPacket(client, packet)
  }

  async cleanIncoming(client: BrokerClient): Promise<void> {
    this.#sql.delClientIncoming.run(client.id)
    await this.#memory.cleanIncoming(client)
  }

  /** Stamps the will with this broker's id and the client id (aedes and streamWill rely on both). */
  async putWill(client: BrokerClient, packet: BrokerPacket): Promise<void> {
    const will = Object.assign(packet, { brokerId: this.#requireBroker().id, clientId: client.id })
    const { payload, meta } = encodePacket(will)
    this.#sql.putWill.run(client.id, payload, meta)
    this.#wills.set(client.id, will)
  }

  async getWill(client: BrokerClient): Promise<WillPacket | undefined> {
    return this.#wills.get(client.id)
  }

  async delWill(client: BrokerClient): Promise<WillPacket | undefined> {
    this.#sql.delWill.run(client.id)
    const will = this.#wills.get(client.id)
    this.#wills.delete(client.id)
    return will
  }

  /** Wills not written by one of `brokers` (aedes passes the live ones): after a restart, the previous run's. */
  streamWill(brokers: Record<string, number> = {}): Readable {
    return Readable.from([...this.#wills.values()].filter((will) => !brokers[will.brokerId]))
  }

  /** Drops the in-memory state. aedes never calls this; the Db stays open (its owner closes it). */
  async destroy(): Promise<void> {
    await this.#memory.destroy()
    this.#outgoing.clear()
    this.#dropped.clear()
    this.#wills.clear()
  }

  #requireBroker(): BrokerRef {
    if (this.#broker === undefined) throw new Error('broker persistence used before setup()')
    return this.#broker
  }

  #enqueue(clientId: string, packet: BrokerPacket): void {
    if (this.#queueFull(clientId)) return
    // A copy per subscriber, normalised as aedes-persistence does (messageId reset, transport fields dropped).
    const queued = new MemoryPersistence.Packet(packet)
    const { payload, meta } = encodePacket(queued)
    const seq = Number(this.#sql.addOutgoing.run(clientId, payload, meta).lastInsertRowid)
    this.#queueOf(clientId).push({ seq, packet: queued })
  }

  /** Checked before the copy and the row are made: a full session costs nothing more. */
  #queueFull(clientId: string): boolean {
    const queued = this.#outgoing.get(clientId)?.length ?? 0
    if (queued < this.#maxQueued) return false
    const dropped = (this.#dropped.get(clientId) ?? 0) + 1
    this.#dropped.set(clientId, dropped)
    this.#onQueueFull?.(clientId, dropped)
    return true
  }

  #queueOf(clientId: string): OutgoingEntry[] {
    let queue = this.#outgoing.get(clientId)
    if (queue === undefined) {
      queue = []
      this.#outgoing.set(clientId, queue)
    }
    return queue
  }

  async #loadRetained(): Promise<void> {
    for (const row of this.#sql.allRetained.all()) await this.#memory.storeRetained(decodePacket(row))
  }

  async #loadSubscriptions(): Promise<void> {
    const byClient = new Map<string, BrokerSubscription[]>()
    for (const row of this.#sql.allSubscriptions.all()) {
      const subs = byClient.get(row.client_id) ?? []
      subs.push(subscriptionFromRow(row))
      byClient.set(row.client_id, subs)
    }
    for (const [id, subs] of byClient) await this.#memory.addSubscriptions({ id }, subs)
  }

  async #loadIncoming(): Promise<void> {
    for (const row of this.#sql.allIncoming.all()) await this.#memory.incomingStorePacket({ id: row.client_id }, decodePacket(row))
  }

  #loadWills(): void {
    for (const row of this.#sql.allWills.all()) {
      const will = decodePacket(row) as WillPacket
      this.#wills.set(will.clientId, will)
    }
  }

  /**
   * Restores the queues in order. If the broker reuses a stored packet's brokerId (a pinned aedes
   * `id`), its counter restarts at 0 and new packets would collide with queued ones in
   * outgoingUpdate, so it is moved past the highest queued counter.
   */
  #loadOutgoing(broker: BrokerRef): void {
    for (const row of this.#sql.allOutgoing.all()) {
      const packet = decodePacket(row)
      this.#queueOf(row.client_id).push({ seq: row.seq, packet })
      if (packet.brokerId === broker.id) broker.counter = Math.max(broker.counter, packet.brokerCounter ?? 0)
    }
  }
}

/** The persistence to pass to aedes 1.x: `await Aedes.createBroker({ persistence: createBrokerPersistence(db) })`. */
export function createBrokerPersistence(db: Db, opts: BrokerPersistenceOptions = {}): SqliteBrokerPersistence {
  return new SqliteBrokerPersistence(db, opts)
}
